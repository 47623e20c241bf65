"""The ``dbapi-pool`` command line; ``dbapi-pool bench`` drives a workload through a pool.

``bench`` runs worker threads that check out a connection, run one query, fetch its rows
and return the connection, over and over until the duration ends, then reports throughput,
latency percentiles, time spent waiting for a connection, errors by type and the pool's
statistics. Without ``--url`` it builds a small SQLite database in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import TimingStats, __version__
from ._drivers.base import SECRET_KWARGS
from ._sync import ConnectionPool
from .url import parse_url, redact_url

__all__ = ["build_parser", "format_report", "main", "percentile"]

logger = logging.getLogger("dbapi_pool")

PROG = "dbapi-pool"
SQLITE_ROWS = 1000
#: The SQLite run's default query: an aggregate over a scan of the whole table.
SQLITE_QUERY = "SELECT count(*), sum(value) FROM items WHERE id % 7 = 3"
URL_QUERY = "SELECT 1"
SQLITE_TARGET = "sqlite (temporary file)"
PROGRESS_INTERVAL = 1.0
DATABASE_ERROR, USAGE_ERROR, INTERRUPTED = 1, 2, 130
# ":password@" after "scheme://user": argparse may echo a mistyped URL back in its errors.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")
_BENCH_DESCRIPTION = (
    "Run N worker threads for the duration; each loops: check out a connection, "
    "execute the query, fetch all rows, return the connection. Then report "
    "throughput, latency percentiles, connection wait, errors and pool stats. "
    f"Without --url: a temporary SQLite file database with a {SQLITE_ROWS}-row table "
    f"items(id, name, value), deleted afterwards; default query: {SQLITE_QUERY}. "
    f"With --url: default query {URL_QUERY}."
)


class CliError(Exception):
    """Stop the command with a one-line message and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _ArgumentParser(argparse.ArgumentParser):
    """Report bad options as a CliError rather than as usage text and SystemExit."""

    def error(self, message: str) -> NoReturn:
        """Raise the usage error for main() to print as one line."""
        raise CliError(message, USAGE_ERROR)


def _number(text: str, *, integer: bool = False, allow_zero: bool = False) -> float:
    """Parse an option's finite number: > 0, or >= 0 with ``allow_zero``."""
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'}, got {text}")
    return value


def _port(text: str) -> int:
    """Parse a TCP port number (1-65535)."""
    port = int(_number(text, integer=True))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {text}")
    return port


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``dbapi-pool`` command and its ``bench`` subcommand."""
    parser = _ArgumentParser(prog=PROG, description="Tools for dbapi-pool connection pools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="drive a concurrent workload through a ConnectionPool and report on it",
        description=_BENCH_DESCRIPTION,
    )
    count, positive = partial(_number, integer=True), _number
    non_negative = partial(_number, allow_zero=True)
    add = bench.add_argument
    add("--url", help="database URL, e.g. postgresql+psycopg2://user@host/db, mysql+pymysql://...")
    add("--query", metavar="SQL", help="the statement each operation executes")
    add("--workers", type=count, default=8, metavar="N", help="worker threads (default: 8)")
    add("--pool-size", type=count, default=4, metavar="N", help="pool max_size (default: 4)")
    add("--duration", type=positive, default=5.0, metavar="SECONDS", help="run time (default: 5)")
    hold_help = "extra time each operation holds its connection (default: 0)"
    add("--hold-ms", type=non_negative, default=0.0, metavar="MS", help=hold_help)
    timeout_help = "checkout timeout; a PoolTimeout counts as an error (default: 30)"
    add("--timeout", type=non_negative, default=30.0, metavar="SECONDS", help=timeout_help)
    add("--quiet", action="store_true", help="show no progress on stderr")
    add("--json", action="store_true", help="print the final report as JSON")
    metrics_help = (
        "serve Prometheus metrics of the pool on http://127.0.0.1:PORT/metrics while the "
        "benchmark runs (needs prometheus_client: pip install 'dbapi-pool[prometheus]')"
    )
    add("--metrics-port", type=_port, metavar="PORT", help=metrics_help)
    return parser


@dataclass(frozen=True)
class Options:
    """Hold the validated settings of one ``bench`` run."""

    url: str | None
    query: str | None
    workers: int
    pool_size: int
    duration: float
    hold_ms: float
    timeout: float
    quiet: bool
    json: bool
    metrics_port: int | None = None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Return the nearest-rank ``p``-th percentile (0-100) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p!r}")
    # The epsilon keeps float noise (99.9 * 1000 / 100 = 999.0000000000001) from moving
    # the rank up by one.
    rank = math.ceil(p * len(sorted_values) / 100 - 1e-9)
    return sorted_values[max(rank, 1) - 1]


def _execute(conn: Any, query: str) -> None:
    """Run the query on a connection and fetch every row."""
    cursor = conn.cursor()
    try:
        cursor.execute(query)
        cursor.fetchall()
    finally:
        cursor.close()


class Worker(threading.Thread):
    """Loop checkout-query-return operations until told to stop, timing each one.

    Each worker keeps its own samples (seconds), so that workers share no lock.
    """

    def __init__(
        self, pool: ConnectionPool, query: str, options: Options, stop: threading.Event, number: int
    ) -> None:
        super().__init__(name=f"dbapi-pool-bench-{number}", daemon=True)
        self.pool, self.query, self.options, self.stop = pool, query, options, stop
        self.ops = 0
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        """Run operations until the stop event is set; count failures by exception type."""
        hold, timeout = self.options.hold_ms / 1000, self.options.timeout
        while not self.stop.is_set():
            start = time.perf_counter()
            try:
                with self.pool.connection(timeout) as conn:
                    got = time.perf_counter()
                    _execute(conn, self.query)
                    if hold:
                        time.sleep(hold)
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                continue
            self.latencies.append(time.perf_counter() - start)
            self.waits.append(got - start)
            self.ops += 1


def _one_line(exc: BaseException) -> str:
    """Return an exception as one line: its type and its whitespace-collapsed message."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _make_sqlite(folder: str) -> str:
    """Create the SQLite file database and fill its ``items`` table; return its path."""
    path = str(Path(folder) / "bench.db")
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, value REAL)")
        conn.executemany(
            "INSERT INTO items (id, name, value) VALUES (?, ?, ?)",
            ((i, f"item-{i}", i * 1.5) for i in range(1, SQLITE_ROWS + 1)),
        )
        conn.commit()
    finally:
        conn.close()
    return path


def _open_pool(options: Options, folder: str | None) -> ConnectionPool:
    """Create the pool; raise a usage error for a bad URL or setting or a missing driver."""
    settings: dict[str, Any] = {"max_size": options.pool_size, "timeout": options.timeout}
    try:
        if options.url is None:
            assert folder is not None
            return ConnectionPool(sqlite3, database=_make_sqlite(folder), **settings)
        parsed = parse_url(options.url)
        return ConnectionPool(parsed.import_driver(), **{**parsed.kwargs, **settings})
    except (ValueError, TypeError, ImportError) as exc:
        raise CliError(str(exc), USAGE_ERROR) from exc


def _probe(pool: ConnectionPool, query: str, target: str, timeout: float) -> None:
    """Check out one connection and run the query once, so that failures show at once."""
    try:
        conn = pool.get(timeout)
    except Exception as exc:
        raise CliError(f"cannot connect to {target}: {_one_line(exc)}", DATABASE_ERROR) from exc
    try:
        with conn:
            _execute(conn, query)
    except Exception as exc:
        raise CliError(f"the query failed on {target}: {_one_line(exc)}", DATABASE_ERROR) from exc


class Progress:
    """Show the elapsed time, the operations so far and the current rate on a stream."""

    def __init__(self, stream: TextIO, workers: list[Worker], start: float) -> None:
        self.stream, self.workers, self.start = stream, workers, start
        self.tty = stream.isatty()
        self.last = (start, 0)
        self.width = 0

    def tick(self) -> None:
        """Write one progress line, over the previous one on a terminal."""
        now, ops = time.perf_counter(), sum(w.ops for w in self.workers)
        rate = (ops - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, ops)
        line = f"{now - self.start:6.1f} s  {ops:>12,} ops  {rate:>12,.1f} ops/s"
        if self.tty:
            self.width = max(self.width, len(line))
            self.stream.write("\r" + line.ljust(self.width))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Erase the updating line on a terminal, so that the report starts clean."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def _run(
    pool: ConnectionPool, query: str, options: Options, stderr: TextIO
) -> tuple[list[Worker], float, bool]:
    """Run the workers for the duration (or until Ctrl-C), showing progress.

    Return the joined workers, the seconds they ran and whether Ctrl-C cut the run short.
    """
    stop = threading.Event()
    workers = [Worker(pool, query, options, stop, i) for i in range(options.workers)]
    logger.debug("bench: %d workers on pool %r", options.workers, pool.name)
    start = time.perf_counter()
    deadline = start + options.duration
    progress = None if options.quiet else Progress(stderr, workers, start)
    for worker in workers:
        worker.start()
    interrupted = False
    try:
        while not stop.wait(min(PROGRESS_INTERVAL, max(0.0, deadline - time.perf_counter()))):
            if time.perf_counter() >= deadline:
                break
            if progress is not None:
                progress.tick()
    except KeyboardInterrupt:
        interrupted = True
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if progress is not None:
        progress.finish()
    return workers, elapsed, interrupted


def _ms(seconds: float) -> float:
    """Convert seconds to milliseconds, rounded to 0.1 µs."""
    return round(seconds * 1000, 4)


def _measurements(workers: list[Worker], elapsed: float) -> dict[str, Any]:
    """Merge the workers' samples into throughput, percentiles, waits and errors."""
    latencies = sorted(x for w in workers for x in w.latencies)
    waits = sorted(x for w in workers for x in w.waits)
    errors = sum((w.errors for w in workers), Counter[str]())
    ops = len(latencies)
    latency: dict[str, float | None] = dict.fromkeys(("p50", "p95", "p99", "max"))
    wait: dict[str, float | None] = {"total": _ms(sum(waits)), "mean": None, "p99": None}
    wait["max"] = None  # a mean above p99 (a few long waits) is explained by the max
    if ops:
        latency.update({f"p{p}": _ms(percentile(latencies, p)) for p in (50, 95, 99)})
        latency["max"] = _ms(latencies[-1])
        wait.update(mean=_ms(sum(waits) / ops), p99=_ms(percentile(waits, 99)))
        wait["max"] = _ms(waits[-1]) if waits else 0.0
    return {
        "ops": ops,
        "throughput": round(ops / elapsed, 2) if elapsed > 0 else 0.0,
        "latency_ms": latency,
        "wait_ms": wait,
        "errors": {"total": sum(errors.values()), "by_type": dict(errors.most_common())},
    }


#: The pool's timing histograms in the report: (report key, PoolStats field).
_TIMINGS = (("wait", "wait_time"), ("use", "use_time"), ("connect", "create_time"))


def _pool_stats(pool: ConnectionPool) -> dict[str, Any]:
    """Return the pool's counters as plain data, with only the non-zero close reasons."""
    stats = pool.stats()
    timings = {field for _, field in _TIMINGS}
    data = {f.name: getattr(stats, f.name) for f in fields(stats) if f.name not in timings}
    data["closes"] = {reason: n for reason, n in stats.closes.items() if n}
    return data


def _pool_timings(pool: ConnectionPool) -> dict[str, dict[str, Any]]:
    """Return the count and the p50/p90/p99 estimates (ms) of the pool's own histograms
    of wait, use (checkout to return) and connect times."""
    stats = pool.stats()
    report: dict[str, dict[str, Any]] = {}
    for key, field in _TIMINGS:
        timing: TimingStats = getattr(stats, field)
        report[key] = {"count": timing.count}
        for q in (50, 90, 99):
            estimate = timing.percentile(q / 100)
            report[key][f"p{q}"] = None if estimate is None else _ms(estimate)
    return report


def _serve_metrics(pool: ConnectionPool, port: int, stack: ExitStack) -> None:
    """Serve the pool's Prometheus metrics on 127.0.0.1:``port`` until the stack closes."""
    try:
        from .metrics.prometheus import serve_metrics
    except ImportError as exc:
        message = "--metrics-port needs prometheus_client: pip install 'dbapi-pool[prometheus]'"
        raise CliError(message, USAGE_ERROR) from exc
    try:
        stack.callback(serve_metrics(pool, port=port, addr="127.0.0.1"))
    except OSError as exc:
        message = f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror or exc}"
        raise CliError(message, USAGE_ERROR) from exc


def _pairs(values: dict[str, Any], keys: Sequence[str], *, ms: bool = False) -> str:
    """Render ``key value`` pairs three spaces apart (milliseconds to 1 µs; None as n/a)."""
    shown = (
        "n/a" if values[k] is None else f"{values[k]:,.3f}" if ms else f"{values[k]:,}"
        for k in keys
    )
    return "   ".join(f"{k} {v}" for k, v in zip(keys, shown, strict=True))


def format_report(report: dict[str, Any]) -> str:
    """Render the report for people: a label, then the figures, one topic a line."""
    lat, wait, errors, pool = (report[k] for k in ("latency_ms", "wait_ms", "errors", "pool"))
    by_type = ", ".join(f"{name} {n:,}" for name, n in errors["by_type"].items())
    closes = ", ".join(f"{reason} {n:,}" for reason, n in pool["closes"].items()) or "none"
    stopped = ", interrupted by Ctrl-C" if report["interrupted"] else ""
    lines = [
        f"{PROG} bench",
        f"  target           {report['target']}",
        f"  query            {report['query']}",
        f"  workers          {report['workers']}",
        f"  pool size        {report['pool_size']}",
        f"  duration         {report['duration']:g} s (ran {report['elapsed']:.3f} s{stopped})",
        f"  settings         checkout timeout {report['timeout']:g} s, "
        f"hold {report['hold_ms']:g} ms",
        "",
        "results",
        f"  throughput       {report['throughput']:,.1f} ops/s ({report['ops']:,} operations)",
        f"  errors           {errors['total']:,}" + (f" ({by_type})" if by_type else ""),
        f"  latency (ms)     {_pairs(lat, ('p50', 'p95', 'p99', 'max'), ms=True)}",
        f"  conn. wait (ms)  {_pairs(wait, ('mean', 'p99', 'max', 'total'), ms=True)}"
        " (all workers)",
        "",
        "pool stats",
        f"  {_pairs(pool, ('size', 'idle', 'in_use', 'waiting'))}",
        f"  {_pairs(pool, ('checkouts', 'waits', 'timeouts'))}",
        f"  {_pairs(pool, ('connects', 'connect_failures', 'connect_timeouts'))}",
        f"  closes {closes}",
        "",
        "pool histograms (ms, estimates)",
        *(
            f"  {label:<15}  {_pairs(report['timings_ms'][key], ('p50', 'p90', 'p99'), ms=True)}"
            f"   (n={report['timings_ms'][key]['count']:,})"
            for key, label in (("wait", "wait"), ("use", "use"), ("connect", "connect"))
        ),
    ]
    return "\n".join(lines) + "\n"


def _redact(text: str, url: str | None) -> str:
    """Hide passwords in text: any URL's, and the --url password wherever it appears."""
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    try:
        kwargs = parse_url(url).kwargs if url else {}
    except ValueError:
        kwargs = {}
    for secret in (str(v) for k, v in kwargs.items() if k in SECRET_KWARGS and str(v)):
        text = text.replace(secret, "***")
    return text


def bench(options: Options, stdout: TextIO, stderr: TextIO) -> int:
    """Run the benchmark and write its report; raise CliError if it cannot start."""
    target = SQLITE_TARGET if options.url is None else redact_url(options.url)
    query = options.query or (SQLITE_QUERY if options.url is None else URL_QUERY)
    with ExitStack() as stack:
        folder = None
        if options.url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="dbapi-pool-bench-"))
        pool = _open_pool(options, folder)
        stack.callback(pool.close)  # before the folder goes: the database file is in it
        if options.metrics_port is not None:
            _serve_metrics(pool, options.metrics_port, stack)
        _probe(pool, query, target, options.timeout)
        workers, elapsed, interrupted = _run(pool, query, options, stderr)
        settings = {k: getattr(options, k) for k in ("workers", "pool_size", "duration")}
        report = {
            "target": target,
            "query": query,
            **settings,
            "elapsed": round(elapsed, 4),
            "hold_ms": options.hold_ms,
            "timeout": options.timeout,
            "interrupted": interrupted,
            **_measurements(workers, elapsed),
            "pool": _pool_stats(pool),
            "timings_ms": _pool_timings(pool),
        }
    text = json.dumps(report, indent=2) + "\n" if options.json else format_report(report)
    stdout.write(_redact(text, options.url))
    return INTERRUPTED if interrupted else 0


def main(argv: list[str] | None = None) -> int:
    """Run the ``dbapi-pool`` command on ``argv`` (default: sys.argv[1:]); return its status.

    Bad options print one ``dbapi-pool: error: ...`` line on stderr and return 2; a
    database that cannot be reached or queried returns 1.
    """
    stdout, stderr = sys.stdout, sys.stderr
    url = None
    try:
        parser = build_parser()
        try:
            namespace = parser.parse_args(sys.argv[1:] if argv is None else argv)
        except SystemExit as exc:  # --help and --version exit from inside argparse
            return exc.code if isinstance(exc.code, int) else 0
        if namespace.command is None:
            parser.print_help(stdout)
            return 0
        url = namespace.url
        options = Options(**{k: v for k, v in vars(namespace).items() if k != "command"})
        return bench(options, stdout, stderr)
    except CliError as exc:
        stderr.write(f"{PROG}: error: {_redact(' '.join(str(exc).split()), url)}\n")
        return exc.status
    except KeyboardInterrupt:
        stderr.write(f"{PROG}: interrupted\n")
        return INTERRUPTED
