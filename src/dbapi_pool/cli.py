"""The ``dbapi-pool`` command line: ``dbapi-pool bench`` drives a workload through a pool.

``bench`` starts worker threads that check out a connection, run one query, fetch its
rows and return the connection, over and over until the duration ends; then it reports
throughput, latency percentiles, time spent waiting for a connection, errors by type and
the pool's own statistics. Without ``--url`` it builds a small SQLite file database in a
temporary folder, so it runs anywhere.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import __version__
from ._sync import ConnectionPool
from .url import parse_url, redact_url

__all__ = ["build_parser", "main", "percentile"]

logger = logging.getLogger("dbapi_pool")

PROG = "dbapi-pool"
SQLITE_ROWS = 1000
#: Default query of the SQLite run: an aggregate over a scan of the whole table.
SQLITE_QUERY = "SELECT count(*), sum(value) FROM items WHERE id % 7 = 3"
URL_QUERY = "SELECT 1"
SQLITE_TARGET = "sqlite (temporary file)"
PROGRESS_INTERVAL = 1.0
USAGE_ERROR = 2
DATABASE_ERROR = 1
# user:password@ in anything that looks like a URL, for messages that may echo argv.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*):[^@\s]*@")


class CliError(Exception):
    """Stop the command with a one-line message and an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _ArgumentParser(argparse.ArgumentParser):
    """Report bad options as a CliError rather than usage text and SystemExit."""

    def error(self, message: str) -> NoReturn:
        """Raise the usage error for main() to print as one line."""
        raise CliError(message, USAGE_ERROR)


def _count(text: str) -> int:
    """Parse an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str, *, allow_zero: bool) -> float:
    """Parse a finite number of seconds (or milliseconds), > 0 or >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text!r}")
    return value


def _positive(text: str) -> float:
    return _seconds(text, allow_zero=False)


def _non_negative(text: str) -> float:
    return _seconds(text, allow_zero=True)


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``dbapi-pool`` command and its ``bench`` subcommand."""
    parser = _ArgumentParser(prog=PROG, description="Tools for dbapi-pool connection pools.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="drive a concurrent workload through a ConnectionPool and report on it",
        description=(
            "Run --workers threads for --duration seconds; each one loops: check out a "
            "connection, execute the query, fetch all rows, return the connection. Then "
            "report throughput, latency percentiles, connection wait, errors and pool stats. "
            f"Without --url: a temporary SQLite file database with a {SQLITE_ROWS}-row table "
            f"'items' (id, name, value), removed afterwards; default query: {SQLITE_QUERY}. "
            f"With --url: default query {URL_QUERY}."
        ),
    )
    add = bench.add_argument
    add("--url", help="database URL (postgresql+psycopg2://user@host/db, mysql+pymysql://...)")
    add("--query", metavar="SQL", help="the statement each operation executes")
    add("--workers", type=_count, default=8, metavar="N", help="threads (default: 8)")
    add("--pool-size", type=_count, default=4, metavar="N", help="max_size (default: 4)")
    add("--duration", type=_positive, default=5.0, metavar="SECONDS", help="(default: 5)")
    add(
        "--hold-ms",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="extra time to hold each connection after the query (default: 0)",
    )
    add(
        "--timeout",
        type=_non_negative,
        default=30.0,
        metavar="SECONDS",
        help="checkout timeout: how long get() waits for a connection (default: 30)",
    )
    add("--quiet", action="store_true", help="show no progress on stderr")
    add("--json", action="store_true", help="print the final report as JSON")
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


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Return the nearest-rank ``p``-th percentile (0-100) of already sorted values."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p!r}")
    # The epsilon keeps float noise (0.95 * 100 = 95.00000000000001) from skipping a rank.
    rank = math.ceil(p * len(sorted_values) / 100 - 1e-9)
    return sorted_values[max(rank, 1) - 1]


@dataclass
class Tally:
    """Collect one worker's samples (in seconds), so workers share no lock."""

    ops: int = 0
    latencies: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


def _operation(pool: ConnectionPool, query: str, options: Options, tally: Tally) -> None:
    """Run one checkout-query-return cycle and record its timings."""
    hold = options.hold_ms / 1000
    start = time.perf_counter()
    with pool.connection(options.timeout) as conn:
        got = time.perf_counter()
        cursor = conn.cursor()
        cursor.execute(query)
        cursor.fetchall()
        cursor.close()
        if hold:
            time.sleep(hold)
    tally.latencies.append(time.perf_counter() - start)
    tally.waits.append(got - start)
    tally.ops += 1


def _work(
    pool: ConnectionPool, query: str, options: Options, stop: threading.Event, tally: Tally
) -> None:
    """Loop operations until ``stop`` is set, counting failures by exception type."""
    while not stop.is_set():
        try:
            _operation(pool, query, options, tally)
        except Exception as exc:
            tally.errors[type(exc).__name__] += 1


def _one_line(exc: BaseException) -> str:
    """Return an exception as a single line: its type and its whitespace-collapsed text."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _make_sqlite(folder: str) -> str:
    """Create the SQLite file database with its ``items`` table; return its path."""
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
    """Create the pool; raise CliError(2) for a bad URL, setting or a missing driver."""
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
    """Check out one connection and run the query once, so failures show before the run."""
    try:
        conn = pool.get(timeout)
    except Exception as exc:
        raise CliError(f"cannot connect to {target}: {_one_line(exc)}", DATABASE_ERROR) from exc
    try:
        with conn:
            cursor = conn.cursor()
            cursor.execute(query)
            cursor.fetchall()
            cursor.close()
    except Exception as exc:
        raise CliError(f"the query failed on {target}: {_one_line(exc)}", DATABASE_ERROR) from exc


class Progress:
    """Show elapsed time, operations and the current rate about once a second."""

    def __init__(self, stream: TextIO, tallies: list[Tally], start: float) -> None:
        self.stream = stream
        self.tallies = tallies
        self.tty = stream.isatty()
        self.last = (start, 0)
        self.start = start
        self.width = 0

    def tick(self) -> None:
        """Write one progress line (rewriting the previous one on a terminal)."""
        now, ops = time.perf_counter(), sum(t.ops for t in self.tallies)
        rate = (ops - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, ops)
        line = f"{now - self.start:6.1f} s  {ops:>10,} ops  {rate:>12,.1f} ops/s"
        if self.tty:
            self.width = max(self.width, len(line))
            self.stream.write("\r" + line.ljust(self.width))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """Erase the updating line on a terminal, so the report starts clean."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


@dataclass
class RunResult:
    """Hold what the workers measured."""

    tallies: list[Tally]
    elapsed: float
    interrupted: bool


def _run(pool: ConnectionPool, query: str, options: Options, stderr: TextIO) -> RunResult:
    """Start the workers, show progress until the duration ends, and join them."""
    stop = threading.Event()
    tallies = [Tally() for _ in range(options.workers)]
    threads = [
        threading.Thread(
            target=_work,
            args=(pool, query, options, stop, tally),
            name=f"bench-{i}",
            daemon=True,
        )
        for i, tally in enumerate(tallies)
    ]
    start = time.perf_counter()
    deadline = start + options.duration
    progress = None if options.quiet else Progress(stderr, tallies, start)
    logger.debug("bench: %d workers, pool %r, %.1f s", options.workers, pool.name, options.duration)
    for thread in threads:
        thread.start()
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
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if progress is not None:
        progress.finish()
    return RunResult(tallies, elapsed, interrupted)


def _ms(value: float) -> float:
    return round(value * 1000, 4)


def _measurements(result: RunResult) -> dict[str, Any]:
    """Merge the workers' samples into throughput, percentiles, waits and errors."""
    latencies = sorted(x for t in result.tallies for x in t.latencies)
    waits = sorted(x for t in result.tallies for x in t.waits)
    errors: Counter[str] = Counter()
    for tally in result.tallies:
        errors.update(tally.errors)
    ops = len(latencies)
    latency: dict[str, float | None] = dict.fromkeys(("p50", "p95", "p99", "max"))
    wait: dict[str, float | None] = {"total": _ms(sum(waits)), "mean": None, "p99": None}
    if ops:
        for p in (50, 95, 99):
            latency[f"p{p}"] = _ms(percentile(latencies, p))
        latency["max"] = _ms(latencies[-1])
        wait.update(mean=_ms(sum(waits) / ops), p99=_ms(percentile(waits, 99)))
    return {
        "ops": ops,
        "throughput": round(ops / result.elapsed, 2) if result.elapsed > 0 else 0.0,
        "latency_ms": latency,
        "wait_ms": wait,
        "errors": {"total": sum(errors.values()), "by_type": dict(errors.most_common())},
    }


_STATS_FIELDS = (
    "size", "idle", "in_use", "connecting", "waiting", "checkouts", "waits", "timeouts",
    "refused", "connects", "connect_failures", "connect_timeouts",
)  # fmt: skip


def _report(
    target: str, query: str, options: Options, result: RunResult, pool: ConnectionPool
) -> dict[str, Any]:
    """Gather the whole report (settings, measurements, pool stats) as plain data."""
    stats = pool.stats()
    pool_stats: dict[str, Any] = {name: getattr(stats, name) for name in _STATS_FIELDS}
    pool_stats["closes"] = {reason: n for reason, n in stats.closes.items() if n}
    return {
        "target": target,
        "query": query,
        "workers": options.workers,
        "pool_size": options.pool_size,
        "duration": options.duration,
        "elapsed": round(result.elapsed, 4),
        "hold_ms": options.hold_ms,
        "timeout": options.timeout,
        "interrupted": result.interrupted,
        **_measurements(result),
        "pool": pool_stats,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.3f} ms"


def format_report(report: dict[str, Any]) -> str:
    """Render the report for people: aligned labels, one topic per line."""
    lat, wait, errors, pool = (report[k] for k in ("latency_ms", "wait_ms", "errors", "pool"))
    by_type = ", ".join(f"{name} {n:,}" for name, n in errors["by_type"].items())
    closes = ", ".join(f"{reason} {n:,}" for reason, n in pool["closes"].items()) or "none"
    ran = f" (ran {report['elapsed']:.3f} s{', interrupted' if report['interrupted'] else ''})"
    lines = [
        "dbapi-pool bench",
        f"  target       {report['target']}",
        f"  query        {report['query']}",
        f"  workers      {report['workers']}",
        f"  pool size    {report['pool_size']}",
        f"  duration     {report['duration']:g} s{ran}",
        "",
        "results",
        f"  throughput   {report['throughput']:,.1f} ops/s ({report['ops']:,} operations)",
        f"  errors       {errors['total']:,}" + (f" ({by_type})" if by_type else ""),
        "  latency      " + "   ".join(f"{k} {_fmt(lat[k])}" for k in ("p50", "p95", "p99")),
        f"               max {_fmt(lat['max'])}",
        f"  conn. wait   total {_fmt(wait['total'])}   mean {_fmt(wait['mean'])}"
        f"   p99 {_fmt(wait['p99'])}",
        "",
        "pool stats",
        "  " + "  ".join(f"{k} {pool[k]:,}" for k in ("size", "idle", "in_use", "waiting")),
        "  " + "  ".join(f"{k} {pool[k]:,}" for k in ("checkouts", "waits", "timeouts")),
        "  "
        + "  ".join(
            f"{k} {pool[k]:,}" for k in ("connects", "connect_failures", "connect_timeouts")
        ),
        f"  closes       {closes}",
    ]
    return "\n".join(lines) + "\n"


def bench(options: Options, stdout: TextIO, stderr: TextIO) -> int:
    """Run the benchmark and write its report; raise CliError on a setup failure."""
    target = SQLITE_TARGET if options.url is None else redact_url(options.url)
    query = options.query or (SQLITE_QUERY if options.url is None else URL_QUERY)
    with ExitStack() as stack:
        folder = None
        if options.url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="dbapi-pool-bench-"))
        pool = _open_pool(options, folder)
        try:
            _probe(pool, query, target, options.timeout)
            result = _run(pool, query, options, stderr)
            report = _report(target, query, options, result, pool)
        finally:
            pool.close()
    if options.json:
        stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        stdout.write(format_report(report))
    return 130 if result.interrupted else 0


def _redact_text(text: str, url: str | None) -> str:
    """Hide passwords in a message: any URL's, and the --url password wherever it appears."""
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    if url:
        try:
            kwargs = parse_url(url).kwargs
        except Exception:
            kwargs = {}
        password = kwargs.get("password") or kwargs.get("passwd")
        if password:
            text = text.replace(str(password), "***")
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the ``dbapi-pool`` command with ``argv`` (default: sys.argv[1:]); return its status."""
    args = sys.argv[1:] if argv is None else argv
    stdout, stderr = sys.stdout, sys.stderr
    url = None
    try:
        parser = build_parser()
        try:
            ns = parser.parse_args(args)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else 0
        if ns.command is None:
            parser.print_help(stdout)
            return 0
        url = ns.url
        options = Options(**{k: v for k, v in vars(ns).items() if k != "command"})
        return bench(options, stdout, stderr)
    except CliError as exc:
        message = " ".join(str(exc).split())
        stderr.write(f"{PROG}: error: {_redact_text(message, url)}\n")
        return exc.status
    except KeyboardInterrupt:
        stderr.write(f"{PROG}: interrupted\n")
        return 130
