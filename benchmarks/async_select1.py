"""Compare asyncio connection pools side by side on PostgreSQL ``SELECT 1``, in one process.

Rows (each trial opens a fresh pool; opening and closing are not timed):

- ``dbapi_pool/psycopg2``: dbapi_pool's AsyncConnectionPool, psycopg2 offloaded to its threads
  (the row under test);
- ``dbapi_pool/psycopg``: the same pool with the psycopg (3) sync driver offloaded;
- ``psycopg_pool``: psycopg_pool.AsyncConnectionPool on psycopg 3's native async connections;
- ``asyncpg``: asyncpg's own pool (defaults, so its reset query runs on every release);
- ``anopool``: the baseline, ``--size`` tasks each owning one psycopg2 connection and one
  dedicated thread, one thread hop per request: the physical limit of ``--size`` offloaded
  connections (the ``anopool`` of shared/research/perf-anchors.md, with a dedicated thread
  instead of an executor).

Workload: ``--tasks`` tasks share a pool of ``--size`` connections in a closed loop
(acquire, cursor, execute, fetch, close the cursor, release), ``--warmup`` s then
``--duration`` s measured, while a 1 ms ticker measures event-loop lag. Rows are interleaved
within each of ``--reps`` repetitions. Run ``python benchmarks/async_select1.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import queue
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

SQL = "SELECT 1"
#: The ticker's sleep: how late it wakes is the event-loop lag.
TICK = 0.001
BASELINE = "anopool"
REFERENCE = "psycopg_pool"

perf_counter = time.perf_counter

# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Hold what the command line chose."""

    tasks: int
    size: int
    duration: float
    warmup: float
    reps: int
    autocommit: bool
    host: str
    port: int
    user: str
    dbname: str
    rows: tuple[str, ...]
    json_path: str | None

    def conninfo(self) -> str:
        """Return a libpq connection string for psycopg 3."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Read the command line into Settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200, help="tasks sharing the pool")
    parser.add_argument("--size", type=int, default=8, help="connections in each pool")
    parser.add_argument("--duration", type=float, default=1.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=0.2, help="unmeasured seconds first")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (rows interleaved)")
    parser.add_argument(
        "--autocommit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="autocommit sessions, as in perf-anchors.md (default); --no-autocommit keeps "
        "each driver's default: BEGIN ... COMMIT around every SELECT",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--dbname", default="test")
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=[row.name for row in ROWS],
        metavar="ROW",
        help="run only these rows: " + ", ".join(row.name for row in ROWS),
    )
    parser.add_argument(
        "--json", dest="json_path", metavar="PATH", help="write every raw number to PATH"
    )
    args = parser.parse_args(argv)
    if min(args.tasks, args.size, args.reps) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--tasks, --size and --reps must be >= 1, --duration > 0, --warmup >= 0")
    rows = tuple(row.name for row in ROWS if not args.rows or row.name in args.rows)
    return Settings(
        args.tasks,
        args.size,
        args.duration,
        args.warmup,
        args.reps,
        args.autocommit,
        args.host,
        args.port,
        args.user,
        args.dbname,
        rows,
        args.json_path,
    )


# -- what a row hands the driver loop ---------------------------------------------------------

#: One request; returns the seconds spent waiting for a connection, or None if not measured.
Operation = Callable[[int], Awaitable[float | None]]


@dataclass
class Workload:
    """Describe what the tasks of one trial run: how many, and their request."""

    tasks: int
    operation: Operation
    stats: Callable[[], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Row:
    """Name a contender, the modules it needs, and how to open a fresh pool of it."""

    name: str
    label: str
    modules: tuple[str, ...]
    open: Callable[[Settings], AbstractAsyncContextManager[Workload]]

    def missing(self) -> list[str]:
        """Return the modules this row needs that are not installed."""
        return [name for name in self.modules if importlib.util.find_spec(name) is None]


# -- rows: dbapi_pool -------------------------------------------------------------------------


@functools.cache
def psycopg2_autocommit_factory() -> type:
    """Return a psycopg2 connection class that starts in autocommit mode."""
    import psycopg2.extensions

    class AutocommitConnection(psycopg2.extensions.connection):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.autocommit = True

    return AutocommitConnection


def dbapi_connect_kwargs(settings: Settings, driver: str) -> dict[str, Any]:
    """Return the driver's connect() keywords, in autocommit mode if asked."""
    kwargs: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "dbname": settings.dbname,
    }
    if settings.autocommit and driver == "psycopg2":
        # psycopg2.connect() takes no autocommit keyword; a connection class can set it.
        kwargs["connection_factory"] = psycopg2_autocommit_factory()
    elif settings.autocommit:
        kwargs["autocommit"] = True
    return kwargs


def dbapi_pool_stats(pool: Any) -> dict[str, Any]:
    """Return dbapi_pool's stats() snapshot as plain JSON-able data."""
    snapshot = pool.stats()
    data = {name: getattr(snapshot, name) for name in snapshot.__dataclass_fields__}
    data["closes"] = dict(snapshot.closes)
    return data


def dbapi_pool_row(driver: str) -> Callable[[Settings], AbstractAsyncContextManager[Workload]]:
    """Build the opener of a dbapi_pool row offloading ``driver``."""

    @asynccontextmanager
    async def open_pool(settings: Settings) -> AsyncIterator[Workload]:
        from dbapi_pool import AsyncConnectionPool

        module = importlib.import_module(driver)
        kwargs = dbapi_connect_kwargs(settings, driver)
        size = settings.size
        pool = AsyncConnectionPool(
            module, min_size=size, max_size=size, name=f"bench-{driver}", **kwargs
        )
        async with pool:

            async def operation(task: int) -> float:
                start = perf_counter()
                async with pool.connection() as conn:
                    wait = perf_counter() - start
                    cur = conn.cursor()
                    await cur.execute(SQL)
                    await cur.fetchone()
                    await cur.close()
                return wait

            yield Workload(settings.tasks, operation, lambda: dbapi_pool_stats(pool))

    return open_pool


# -- rows: the peers --------------------------------------------------------------------------


@asynccontextmanager
async def open_psycopg_pool(settings: Settings) -> AsyncIterator[Workload]:
    """Open psycopg_pool.AsyncConnectionPool (native psycopg 3 async), fully filled."""
    import psycopg_pool

    size = settings.size
    pool = psycopg_pool.AsyncConnectionPool(
        settings.conninfo(),
        min_size=size,
        max_size=size,
        open=False,
        kwargs={"autocommit": True} if settings.autocommit else {},
        name="bench-psycopg_pool",
    )
    await pool.open(wait=True, timeout=10)
    try:

        async def operation(task: int) -> float:
            start = perf_counter()
            async with pool.connection() as conn:
                wait = perf_counter() - start
                cur = conn.cursor()
                await cur.execute(SQL)
                await cur.fetchone()
                await cur.close()
            return wait

        yield Workload(settings.tasks, operation, lambda: dict(pool.get_stats()))
    finally:
        await pool.close()


@asynccontextmanager
async def open_asyncpg(settings: Settings) -> AsyncIterator[Workload]:
    """Open an asyncpg pool with its defaults (reset on release), fully filled."""
    import asyncpg

    size = settings.size
    pool = await asyncpg.create_pool(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        database=settings.dbname,
        min_size=size,
        max_size=size,
    )
    try:

        async def operation(task: int) -> float:
            start = perf_counter()
            async with pool.acquire() as conn:
                wait = perf_counter() - start
                await conn.fetchval(SQL)
            return wait

        yield Workload(settings.tasks, operation)
    finally:
        await pool.close()


# -- row: the baseline ------------------------------------------------------------------------


class DedicatedThread:
    """Run jobs one at a time in one OS thread; resolve a loop future for each.

    The cheapest hand-off measured in research/concurrency.md (a ``SimpleQueue`` into the
    thread, ``call_soon_threadsafe`` back): what a pool offloading per connection can reach.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._jobs: queue.SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="anopool", daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> asyncio.Future[Any]:
        """Queue ``job()`` and return a future of the loop for its result."""
        fut = self._loop.create_future()
        self._jobs.put((fut, job))
        return fut

    def stop(self) -> None:
        """Let the thread exit after the jobs already queued."""
        self._jobs.put(None)

    def _run(self) -> None:
        post = self._loop.call_soon_threadsafe
        while (item := self._jobs.get()) is not None:
            fut, job = item
            try:
                post(_settle, fut, True, job())
            except Exception as exc:
                post(_settle, fut, False, exc)


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def select_one(conn: Any, commit: bool) -> None:
    """Run one whole request on a psycopg2 connection (the baseline's single hop)."""
    cur = conn.cursor()
    cur.execute(SQL)
    cur.fetchone()
    cur.close()
    if commit:
        conn.commit()


@asynccontextmanager
async def open_anopool(settings: Settings) -> AsyncIterator[Workload]:
    """Give each of ``--size`` tasks its own psycopg2 connection and dedicated thread."""
    import psycopg2

    loop = asyncio.get_running_loop()
    kwargs = dbapi_connect_kwargs(settings, "psycopg2")
    threads = [DedicatedThread(loop) for _ in range(settings.size)]
    conns: list[Any] = []
    try:
        for thread in threads:
            conns.append(await thread.submit(lambda: psycopg2.connect(**kwargs)))
        commit = not settings.autocommit

        async def operation(task: int) -> None:
            conn = conns[task]
            await threads[task].submit(lambda: select_one(conn, commit))

        yield Workload(settings.size, operation)
    finally:
        for thread, conn in zip(threads, conns, strict=False):
            await thread.submit(conn.close)
        for thread in threads:
            thread.stop()


ROWS: tuple[Row, ...] = (
    Row(
        "dbapi_pool/psycopg2",
        "dbapi_pool AsyncConnectionPool, psycopg2 offloaded (under test)",
        ("dbapi_pool", "psycopg2"),
        dbapi_pool_row("psycopg2"),
    ),
    Row(
        "dbapi_pool/psycopg",
        "dbapi_pool AsyncConnectionPool, psycopg 3 sync offloaded",
        ("dbapi_pool", "psycopg"),
        dbapi_pool_row("psycopg"),
    ),
    Row(
        REFERENCE,
        "psycopg_pool.AsyncConnectionPool, native psycopg 3 async",
        ("psycopg_pool", "psycopg"),
        open_psycopg_pool,
    ),
    Row("asyncpg", "asyncpg pool (defaults)", ("asyncpg",), open_asyncpg),
    Row(
        BASELINE,
        "no pool: one psycopg2 connection + dedicated thread per task, one hop a request",
        ("psycopg2",),
        open_anopool,
    ),
)

# -- the driver loop --------------------------------------------------------------------------


@dataclass
class Window:
    """Hold the measured window (perf_counter times) and the first error of a trial."""

    start: float
    end: float
    error: BaseException | None = None

    def abort(self, exc: BaseException) -> None:
        """Record the first error and end the trial for every task."""
        if self.error is None:
            self.error = exc
        self.end = min(self.end, perf_counter())


class Mark(NamedTuple):
    """Hold a reading of the wall clock, the CPU clocks and the context-switch count."""

    wall: float
    process_cpu: float
    loop_cpu: float
    switches: int

    @classmethod
    def now(cls) -> Mark:
        """Read them all now (the loop-thread CPU is that of the calling thread)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)  # summed over all threads
        switches = usage.ru_nvcsw + usage.ru_nivcsw
        return cls(perf_counter(), time.process_time(), time.thread_time(), switches)


@dataclass
class Trial:
    """Hold the raw numbers of one row in one repetition."""

    row: str
    rep: int
    window: float = 0.0
    counts: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    #: Seconds per request, from asking for a connection to having returned it.
    latencies: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    stats: dict[str, Any] | None = None
    error: str | None = None
    #: The clocks at the first and the last tick inside the window.
    marks: list[Mark] = field(default_factory=list)

    @property
    def ops(self) -> int:
        """Return the operations completed inside the window."""
        return sum(self.counts)

    @property
    def ops_per_s(self) -> float:
        """Return the throughput over the window."""
        return self.ops / self.window if self.window else 0.0

    def mark(self) -> None:
        """Read the clocks (on the loop thread): the first and the latest reading are kept."""
        mark = Mark.now()
        if self.marks:
            self.marks[1:] = [mark]
        else:
            self.marks.append(mark)

    def rates(self) -> dict[str, float]:
        """Return, per op: process CPU (µs) and context switches; the loop thread's CPU share."""
        nan = float("nan")
        if len(self.marks) < 2 or self.marks[1].wall <= self.marks[0].wall or not self.ops:
            return {"cpu_us_per_op": nan, "switches_per_op": nan, "loop_busy": nan}
        first, last = self.marks
        wall = last.wall - first.wall
        ops = self.ops_per_s * wall
        return {
            "cpu_us_per_op": (last.process_cpu - first.process_cpu) / ops * 1e6,
            "switches_per_op": (last.switches - first.switches) / ops,
            "loop_busy": (last.loop_cpu - first.loop_cpu) / wall,
        }


async def run_task(
    index: int, operation: Operation, window: Window, counts: list[int], trial: Trial
) -> None:
    """Repeat the request until the window ends; count and time those that end inside it."""
    waits, latencies = trial.waits, trial.latencies
    try:
        while (start := perf_counter()) < window.end:
            wait = await operation(index)
            done = perf_counter()
            if window.start <= done < window.end:
                counts[index] += 1
                latencies.append(done - start)
                if wait is not None:
                    waits.append(wait)
    except Exception as exc:
        window.abort(exc)


async def tick(window: Window, trial: Trial) -> None:
    """Sleep 1 ms again and again; record how late each wake-up inside the window is.

    Also read the CPU clocks at the first and the last wake-up inside the window.
    """
    sleep = asyncio.sleep
    lags = trial.lags
    while (before := perf_counter()) < window.end:
        await sleep(TICK)
        after = perf_counter()
        if window.start <= after < window.end:
            lags.append(after - before - TICK)
            trial.mark()


async def drive(workload: Workload, settings: Settings, trial: Trial) -> None:
    """Run the workload's tasks and the ticker through warm-up and window into ``trial``."""
    counts = [0] * workload.tasks
    begin = perf_counter()
    window = Window(begin + settings.warmup, begin + settings.warmup + settings.duration)
    jobs = [run_task(i, workload.operation, window, counts, trial) for i in range(workload.tasks)]
    await asyncio.gather(*jobs, tick(window, trial))
    if window.error is not None:
        raise window.error
    trial.window = window.end - window.start
    trial.counts = counts
    if workload.stats is not None:
        trial.stats = workload.stats()


async def run_trial(row: Row, settings: Settings, rep: int) -> Trial:
    """Open a fresh pool of ``row``, drive it, close it; return its numbers or its error."""
    trial = Trial(row.name, rep)
    gc.collect()
    try:
        async with row.open(settings) as workload:
            await drive(workload, settings, trial)
    except Exception as exc:
        trial.error = " ".join(f"{type(exc).__name__}: {exc}".split())
    return trial


async def run_all(settings: Settings, rows: Sequence[Row]) -> list[Trial]:
    """Run every installed row once per repetition, interleaved, and print progress."""
    trials: list[Trial] = []
    for rep in range(settings.reps):
        for row in rows:
            trial = await run_trial(row, settings, rep)
            trials.append(trial)
            shown = trial.error or f"{trial.ops_per_s:,.0f} ops/s"
            print(f"  rep {rep + 1}/{settings.reps} {row.name:<20} {shown}", file=sys.stderr)
    return trials


# -- summaries --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100) by linear interpolation; NaN if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


#: The percentiles reported of the waits and of the whole requests.
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


def jain(counts: Sequence[int]) -> float:
    """Return Jain's fairness index of per-task (or per-worker) counts (1 = all equal)."""
    total = sum(counts)
    squares = sum(c * c for c in counts)
    return total * total / (len(counts) * squares) if squares else float("nan")


def median(values: Sequence[float]) -> float:
    """Return the median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def paired_ratios(trials: Sequence[Any], row: str, other: str) -> list[float]:
    """Return ``row`` ÷ ``other`` for each repetition where both succeeded (any trials
    with ``row``, ``rep``, ``error`` and ``ops_per_s``: compare.py's too)."""
    by_rep = {(t.row, t.rep): t for t in trials if t.error is None}
    ratios = []
    for (name, rep), trial in by_rep.items():
        peer = by_rep.get((other, rep))
        if name == row and peer is not None and peer.ops_per_s:
            ratios.append(trial.ops_per_s / peer.ops_per_s)
    return ratios


def summarize(trials: Sequence[Trial], row: str) -> dict[str, Any]:
    """Reduce one row's trials to the table's columns (medians over repetitions)."""
    ok = [t for t in trials if t.row == row and t.error is None]
    errors = [t.error for t in trials if t.row == row and t.error is not None]
    rates = [t.ops_per_s for t in ok]
    mid = median(rates)
    return {
        "row": row,
        "reps_ok": len(ok),
        "errors": errors,
        "ops_per_s": mid,
        "spread_pct": (max(rates) - min(rates)) / mid * 100 if rates else float("nan"),
        "vs_baseline": median(paired_ratios(trials, row, BASELINE)),
        "vs_reference": median(paired_ratios(trials, row, REFERENCE)),
        **{
            f"{kind}_{name}_ms": median([percentile(v, q) * 1e3 for v in samples if v])
            for kind, samples in (
                ("wait", [t.waits for t in ok]),
                ("req", [t.latencies for t in ok]),
            )
            for name, q in PERCENTILES
        },
        "lag_p50_ms": median([percentile(t.lags, 50) * 1e3 for t in ok]),
        "lag_p99_ms": median([percentile(t.lags, 99) * 1e3 for t in ok]),
        "lag_max_ms": max((max(t.lags) * 1e3 for t in ok if t.lags), default=float("nan")),
        "served": median([sum(c > 0 for c in t.counts) / len(t.counts) for t in ok]),
        "jain": median([jain(t.counts) for t in ok]),
        **{key: median([t.rates()[key] for t in ok]) for key in RATE_KEYS},
    }


# -- output -----------------------------------------------------------------------------------

COLUMNS = (
    ("row", "{}", 20),
    ("ops/s", "{:,.0f}", 8),
    ("spread", "{:.0f}%", 7),
    ("÷anopool", "{:.3f}", 9),
    ("÷psycopg_pool", "{:.3f}", 14),
    ("wait p50", "{:.2f}", 9),
    ("wait p99", "{:.2f}", 9),
    ("wait p99.9", "{:.2f}", 10),
    ("req p50", "{:.2f}", 8),
    ("req p99", "{:.2f}", 8),
    ("req p99.9", "{:.2f}", 9),
    ("lag p50", "{:.2f}", 8),
    ("lag p99", "{:.2f}", 8),
    ("lag max", "{:.1f}", 8),
    ("served", "{:.0%}", 7),
    ("Jain", "{:.3f}", 6),
    ("cpu µs/op", "{:.0f}", 9),
    ("csw/op", "{:.2f}", 6),
    ("loop busy", "{:.0%}", 9),
)
RATE_KEYS = ("cpu_us_per_op", "switches_per_op", "loop_busy")
LEGEND = (
    "medians over reps; wait = time to get a connection (ms); req = the whole request, from "
    "asking for a connection to\nhaving returned it (ms); lag = lateness of a 1 ms sleep "
    "(ms; max = worst rep);\ncpu µs/op = this process's CPU (all threads) per op; csw/op = "
    "its context switches per op; loop busy = CPU share of the event-loop thread"
)
KEYS = (
    "row",
    "ops_per_s",
    "spread_pct",
    "vs_baseline",
    "vs_reference",
    "wait_p50_ms",
    "wait_p99_ms",
    "wait_p99.9_ms",
    "req_p50_ms",
    "req_p99_ms",
    "req_p99.9_ms",
    "lag_p50_ms",
    "lag_p99_ms",
    "lag_max_ms",
    "served",
    "jain",
    *RATE_KEYS,
)


def format_cell(fmt: str, value: Any, width: int) -> str:
    """Format one cell, showing '-' for a missing number."""
    missing = isinstance(value, float) and value != value  # NaN
    text = "-" if missing else fmt.format(value)
    return text.ljust(width) if fmt == "{}" else text.rjust(width)


def table_line(summary: dict[str, Any]) -> str:
    """Render one row's summary, or why it has no numbers."""
    if not summary["reps_ok"]:
        return f"{summary['row']:<20}  failed: {summary['errors'][0]}"
    cells = [
        format_cell(fmt, summary[key], width)
        for (_, fmt, width), key in zip(COLUMNS, KEYS, strict=True)
    ]
    return "  ".join(cells).rstrip()


def table(
    names: Sequence[str], summaries: Sequence[dict[str, Any]], skipped: dict[str, str]
) -> str:
    """Render the rows in order as a plain-text table; note failed repetitions below it."""
    titles = [f"{t:<{w}}" if i == 0 else f"{t:>{w}}" for i, (t, _, w) in enumerate(COLUMNS)]
    by_name = {summary["row"]: summary for summary in summaries}
    lines = ["  ".join(titles)]
    for name in names:
        if name in skipped:
            lines.append(f"{name:<20}  {skipped[name]}")
        else:
            lines.append(table_line(by_name[name]))
    for summary in summaries:
        if summary["errors"] and summary["reps_ok"]:
            count = len(summary["errors"])
            lines.append(f"note: {summary['row']}: {count} rep(s) failed: {summary['errors'][0]}")
    return "\n".join(lines)


def version_of(distribution: str) -> str:
    """Return an installed distribution's version, or 'not installed'."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def source_revision() -> str:
    """Return the git commit of the dbapi_pool sources measured ('+dirty' if edited)."""
    spec = importlib.util.find_spec("dbapi_pool")
    if spec is None or spec.origin is None:
        return "unknown"
    where = os.path.dirname(spec.origin)
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{commit}+dirty" if dirty else commit


def machine_line() -> str:
    """Describe the machine, Python, the drivers and the peers in one line."""
    peers = ("psycopg2-binary", "psycopg", "psycopg-pool", "asyncpg")
    versions = ", ".join(f"{name} {version_of(name)}" for name in peers)
    ours = f"dbapi-pool {version_of('dbapi-pool')} (src {source_revision()})"
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores, load {load}, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}; {ours}, {versions}"
    )


def header(settings: Settings) -> str:
    """Describe the workload in one line."""
    mode = "autocommit" if settings.autocommit else "driver-default transactions"
    return (
        f"workload: SELECT 1 on {settings.host}:{settings.port}/{settings.dbname}, "
        f"{settings.tasks} tasks / {settings.size} connections ({BASELINE}: "
        f"{settings.size} tasks), {mode}, {settings.reps} reps x {settings.duration:g} s "
        f"(+{settings.warmup:g} s warm-up), rows interleaved"
    )


def write_json(path: str, settings: Settings, trials: Sequence[Trial], report: Any) -> None:
    """Write the settings, the summaries and every trial's raw numbers to ``path``."""
    raw = [
        {
            "row": t.row,
            "rep": t.rep,
            "error": t.error,
            "window_s": t.window,
            "ops": t.ops,
            "ops_per_s": t.ops_per_s,
            "counts": t.counts,
            "waits_ms": [round(w * 1e3, 4) for w in t.waits],
            "latencies_ms": [round(w * 1e3, 4) for w in t.latencies],
            "lags_ms": [round(lag * 1e3, 4) for lag in t.lags],
            **t.rates(),
            "pool_stats": t.stats,
        }
        for t in trials
    ]
    data = {"settings": asdict(settings), **report, "trials": raw}
    with open(path, "w", encoding="utf-8") as out:
        json.dump(without_nan(data), out, indent=1, default=str)


def without_nan(value: Any) -> Any:
    """Return ``value`` with every NaN replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; return the exit status."""
    settings = parse_args(argv)
    chosen = [row for row in ROWS if row.name in settings.rows]
    skipped = {r.name: f"not installed ({', '.join(r.missing())})" for r in chosen if r.missing()}
    runnable = [row for row in chosen if row.name not in skipped]
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    machine = machine_line()
    print(f"{started}  {header(settings)}", file=sys.stderr)
    trials = asyncio.run(run_all(settings, runnable))
    summaries = [summarize(trials, row.name) for row in runnable]
    print(f"date: {started}\n{machine}\n{header(settings)}")
    print(LEGEND)
    print(table(settings.rows, summaries, skipped))
    if settings.json_path:
        report = {
            "date": started,
            "machine": machine,
            "rows": {row.name: row.label for row in chosen},
            "summary": summaries,
            "skipped": skipped,
        }
        write_json(settings.json_path, settings, trials, report)
    return 0 if all(s["reps_ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
