"""The closed loop of compare.py: run one row's workers through warm-up and window, and
reduce the trials of several repetitions to medians and paired ratios.

Workers are ``threading.Thread`` objects looked up at call time, so the same code drives
green threads in a process that eventlet monkey-patched (compare_green.py).

A worker repeats: check out, ``cursor()``, ``execute(sql)``, ``fetchone()``, close the
cursor, check in. It counts every request in a list slot of its own; the controller copies
the list when the window opens and when it closes, so throughput needs no clock reading per
request. Timed scenarios read the clock three times per request: before the checkout, after
it (the wait) and after the check-in (the whole request's latency). Untimed ones (S1, a few
hundred nanoseconds of work per request, where three readings would cost more than the
baseline's whole request) time one request in :data:`SAMPLE_EVERY`, every row alike.

Rows of dbapi_pool's asyncio pool run the same request in asyncio tasks instead
(:func:`drive_async`), on an event loop of their own, measured the same way.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from async_select1 import jain, median, paired_ratios, percentile

perf_counter = time.perf_counter

#: A worker's checkout: returns something with ``cursor()``.
Checkout = Callable[[], Any]
#: A worker's check-in of what its checkout returned.
Checkin = Callable[[Any], None]

WARMUP, MEASURE, STOP = 0, 1, 2
#: Untimed scenarios time one request in this many (the others are counted only).
SAMPLE_EVERY = 32
#: How long a trial may take to stop after its window before it counts as hung.
JOIN_TIMEOUT = 30.0


@dataclass
class Workers:
    """Describe what one trial runs: how many workers, and each one's checkout/check-in."""

    count: int
    ops: Callable[[int], tuple[Checkout, Checkin]]
    sql: str
    #: What the table should say about this row (how the pool was really set up).
    note: str = ""


@dataclass
class AsyncWorkers:
    """Describe what the tasks of an asyncio trial run: how many, and one request each
    (which returns the seconds it waited for its connection; the runner times the whole
    request)."""

    count: int
    request: Callable[[int], Awaitable[float]]
    note: str = ""


@dataclass
class Trial:
    """Hold the raw numbers of one row in one repetition of one scenario."""

    scenario: str
    row: str
    rep: int
    window: float = 0.0
    counts: list[int] = field(default_factory=list)
    #: Seconds from asking for a connection to having it (one request in SAMPLE_EVERY in
    #: untimed scenarios).
    waits: list[float] = field(default_factory=list)
    #: Seconds from asking for a connection to having returned it: the whole request.
    latencies: list[float] = field(default_factory=list)
    cpu: float = 0.0
    switches: float = 0.0
    error: str | None = None
    note: str = ""

    @property
    def ops(self) -> int:
        """Return the requests completed inside the window."""
        return sum(self.counts)

    @property
    def ops_per_s(self) -> float:
        """Return the throughput over the window."""
        return self.ops / self.window if self.window else 0.0

    def to_json(self) -> dict[str, Any]:
        """Return the trial as plain data (what the green child sends back)."""
        return {
            "scenario": self.scenario,
            "row": self.row,
            "rep": self.rep,
            "window": self.window,
            "counts": self.counts,
            "waits": self.waits,
            "latencies": self.latencies,
            "cpu": self.cpu,
            "switches": self.switches,
            "error": self.error,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        """Rebuild a trial from ``to_json()``'s data."""
        return cls(**data)


class Mark(NamedTuple):
    """Hold a reading of the wall clock, the process's CPU time and its context switches."""

    wall: float
    cpu: float
    switches: int

    @classmethod
    def now(cls) -> Mark:
        """Read them all now (CPU and switches summed over every thread)."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(perf_counter(), time.process_time(), usage.ru_nvcsw + usage.ru_nivcsw)


class Failure:
    """Keep the first error of a trial's workers, and stop the others."""

    def __init__(self, state: list[int]) -> None:
        self.state = state
        self.error: BaseException | None = None

    def record(self, exc: BaseException) -> None:
        """Keep ``exc`` if it is the first, and tell every worker to stop."""
        if self.error is None:
            self.error = exc
        self.state[0] = STOP


def loop(
    index: int,
    checkout: Checkout,
    checkin: Checkin,
    sql: str,
    counts: list[int],
    failure: Failure,
    samples: tuple[list[float], list[float]],
) -> None:
    """Repeat the request until told to stop; count each one, time one in SAMPLE_EVERY."""
    state = failure.state
    waits, latencies = samples
    untimed = range(SAMPLE_EVERY - 1)
    try:
        while state[0] != STOP:
            for _ in untimed:
                conn = checkout()
                cur = conn.cursor()
                cur.execute(sql)
                cur.fetchone()
                cur.close()
                checkin(conn)
                counts[index] += 1
            start = perf_counter()
            conn = checkout()
            got = perf_counter()
            cur = conn.cursor()
            cur.execute(sql)
            cur.fetchone()
            cur.close()
            checkin(conn)
            end = perf_counter()
            counts[index] += 1
            if state[0] == MEASURE:
                waits.append(got - start)
                latencies.append(end - start)
    except Exception as exc:
        failure.record(exc)


def timed_loop(
    index: int,
    checkout: Checkout,
    checkin: Checkin,
    sql: str,
    counts: list[int],
    failure: Failure,
    samples: tuple[list[float], list[float]],
) -> None:
    """Repeat the request until told to stop; count each one, time its checkout and the
    whole request."""
    state = failure.state
    waits, latencies = samples
    try:
        while state[0] != STOP:
            start = perf_counter()
            conn = checkout()
            got = perf_counter()
            cur = conn.cursor()
            cur.execute(sql)
            cur.fetchone()
            cur.close()
            checkin(conn)
            end = perf_counter()
            counts[index] += 1
            if state[0] == MEASURE:
                waits.append(got - start)
                latencies.append(end - start)
    except Exception as exc:
        failure.record(exc)


def start_workers(
    workers: Workers,
    counts: list[int],
    failure: Failure,
    samples: tuple[list[float], list[float]],
    timed: bool,
) -> list[threading.Thread]:
    """Start one (possibly green) thread per worker, each in its loop."""
    threads = []
    target: Callable[..., None] = timed_loop if timed else loop
    for index in range(workers.count):
        checkout, checkin = workers.ops(index)
        args = (index, checkout, checkin, workers.sql, counts, failure, samples)
        thread = threading.Thread(target=target, args=args, name=f"worker-{index}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads


def drive(workers: Workers, trial: Trial, warmup: float, duration: float, timed: bool) -> None:
    """Run the workers through warm-up and window; fill ``trial``; raise their error."""
    counts = [0] * workers.count
    state = [WARMUP]
    failure = Failure(state)
    samples: tuple[list[float], list[float]] = ([], [])
    threads = start_workers(workers, counts, failure, samples, timed)
    try:
        time.sleep(warmup)
        first, begin = counts[:], Mark.now()
        if state[0] == WARMUP:
            state[0] = MEASURE
        time.sleep(duration)
        last, end = counts[:], Mark.now()
    finally:
        state[0] = STOP
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
    if failure.error is not None:
        raise failure.error
    if any(thread.is_alive() for thread in threads):
        raise TimeoutError(f"workers still running {JOIN_TIMEOUT:g} s after the window")
    trial.window = end.wall - begin.wall
    trial.counts = [b - a for a, b in zip(first, last, strict=True)]
    trial.waits, trial.latencies = samples
    trial.cpu = end.cpu - begin.cpu
    trial.switches = end.switches - begin.switches
    trial.note = workers.note


async def drive_async(workers: AsyncWorkers, trial: Trial, warmup: float, duration: float) -> None:
    """Run the tasks through warm-up and window, as :func:`drive` runs threads (every
    request timed: the asyncio rows never run in an untimed scenario)."""
    counts = [0] * workers.count
    state = [WARMUP]
    waits: list[float] = []
    latencies: list[float] = []

    async def task(index: int) -> None:
        request = workers.request
        while state[0] != STOP:
            start = perf_counter()
            wait = await request(index)
            end = perf_counter()
            counts[index] += 1
            if state[0] == MEASURE:
                waits.append(wait)
                latencies.append(end - start)

    tasks = [asyncio.ensure_future(task(index)) for index in range(workers.count)]
    try:
        await asyncio.sleep(warmup)
        first, begin = counts[:], Mark.now()
        state[0] = MEASURE
        await asyncio.sleep(duration)
        last, end = counts[:], Mark.now()
    finally:
        state[0] = STOP
        done, pending = await asyncio.wait(tasks, timeout=JOIN_TIMEOUT)
    for failed in done:
        failed.result()  # raises the first worker's error
    if pending:
        raise TimeoutError(f"tasks still running {JOIN_TIMEOUT:g} s after the window")
    trial.window = end.wall - begin.wall
    trial.counts = [b - a for a, b in zip(first, last, strict=True)]
    trial.waits = waits
    trial.latencies = latencies
    trial.cpu = end.cpu - begin.cpu
    trial.switches = end.switches - begin.switches
    trial.note = workers.note


def describe_error(exc: BaseException) -> str:
    """Return an error as one short line."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 160 else text[:157] + "..."


def prepare() -> None:
    """Collect garbage left by the previous trial, so that it is not collected in this one."""
    gc.collect()


# -- summaries --------------------------------------------------------------------------------


#: The percentiles each row reports, of its waits and of its whole requests.
PERCENTILES = (("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9))


def tail_ms(trials: Sequence[Trial]) -> dict[str, float]:
    """Return the wait and request percentiles (ms): for each, the median over the
    repetitions of the trial's own percentile (``wait_p99_ms``, ``req_p99.9_ms``...)."""
    out = {}
    for kind, attr in (("wait", "waits"), ("req", "latencies")):
        for name, q in PERCENTILES:
            values = [getattr(t, attr) for t in trials]
            out[f"{kind}_{name}_ms"] = median([percentile(v, q) * 1e3 for v in values if v])
    return out


def per_op(total: float, trial: Trial) -> float:
    """Return ``total`` divided by the trial's requests (NaN if none)."""
    return total / trial.ops if trial.ops else float("nan")


def summarize(
    trials: Sequence[Trial], row: str, baseline: str, ideal: float | None = None
) -> dict[str, Any]:
    """Reduce one row's trials (one scenario) to medians over the repetitions."""
    ok = [t for t in trials if t.row == row and t.error is None]
    errors = [t.error for t in trials if t.row == row and t.error is not None]
    rates = [t.ops_per_s for t in ok]
    mid = median(rates)
    return {
        "row": row,
        "baseline": baseline,
        "reps_ok": len(ok),
        "errors": errors,
        "ops_per_s": mid,
        "spread_pct": (max(rates) - min(rates)) / mid * 100 if rates and mid else float("nan"),
        "vs_baseline": median(paired_ratios(trials, row, baseline)),
        "vs_ideal": mid / ideal if ideal else float("nan"),
        **tail_ms(ok),
        "served": median([sum(c > 0 for c in t.counts) / len(t.counts) for t in ok if t.counts]),
        "served_min": min((sum(c > 0 for c in t.counts) / len(t.counts) for t in ok), default=0.0),
        "jain": median([jain(t.counts) for t in ok]),
        "cpu_us_per_op": median([per_op(t.cpu * 1e6, t) for t in ok]),
        "switches_per_op": median([per_op(t.switches, t) for t in ok]),
        "notes": sorted({t.note for t in ok if t.note}),
    }
