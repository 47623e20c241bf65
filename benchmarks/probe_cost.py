"""What the check before each checkout costs: a checkout and return on a real connection.

Three ways of treating a connection used a moment ago, in the same run:

- ``window``: trusted unchecked (the 0.5 s ``check_idle_after`` window that was the rule
  before issue 11; here ``check_idle_after=None``, which runs the same code path);
- ``poll``: the socket probe at every checkout, libc ``poll()`` called with the GIL held
  (``socket_readable``, today's default for drivers that expose their socket);
- ``select``: the same, with the old ``select()`` probe (``select_readable``), which lets
  the GIL go;

and, for scale, ``query``: ``window`` with a ``SELECT 1`` run on each checkout (the
smallest useful request).

Each is timed alone and beside one busy Python thread (a counting loop that never
blocks, as a CPU-bound request handler would). Sessions are in autocommit, so a cycle does
no I/O but the probe: only the pool's own work and the probe are measured. Wall time
counts what the caller waits (the GIL included); CPU time, this thread's own work (steadier
on a loaded machine). Trials of the eight rows a driver are interleaved inside each
repetition; the figures are medians over the repetitions, and ratios and differences are
to ``window`` in the same repetition.

    /work/venv/bin/python benchmarks/probe_cost.py [--reps 7] [--duration 0.2]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import dbapi_pool._policy as pool_policy
from dbapi_pool import ConnectionPool
from dbapi_pool._drivers.base import select_readable, socket_readable

DRIVERS: dict[str, dict[str, Any]] = {
    "psycopg2": {"host": "127.0.0.1", "user": "postgres", "dbname": "test"},
    "pymysql": {
        "host": "127.0.0.1",
        "user": "root",
        "password": "",
        "database": "test",
        "autocommit": True,
    },
}
MODES = ("window", "poll", "select", "query")
PROBES: dict[str, Callable[[int], bool]] = {"poll": socket_readable, "select": select_readable}


def make_pool(driver: str, mode: str) -> ConnectionPool:
    """Open a one-connection autocommit pool; ``window`` turns the check off."""
    module = __import__(driver)
    check = None if mode in ("window", "query") else 0.5
    pool = ConnectionPool(module, max_size=1, check_idle_after=check, **DRIVERS[driver])
    if driver == "psycopg2":  # no connect() keyword for it
        conn = pool.get()
        conn.autocommit = True
        pool.put(conn)
    return pool


@contextmanager
def probe(mode: str) -> Iterator[None]:
    """Have the pools use this mode's probe (read by ``DriverPolicy.needs_ping``)."""
    pool_policy.socket_readable = PROBES.get(mode, socket_readable)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        pool_policy.socket_readable = socket_readable  # type: ignore[attr-defined]


@contextmanager
def busy_thread(on: bool) -> Iterator[None]:
    """Run a Python loop that never blocks beside the measurement (when ``on``)."""
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin, daemon=True)
    if on:
        thread.start()
        time.sleep(0.01)
    try:
        yield
    finally:
        stop.set()
        if on:
            thread.join()


def select_1(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetchall()
    cur.close()


def trial(pool: ConnectionPool, duration: float, query: bool) -> tuple[float, float, list[int]]:
    """Cycle checkouts for ``duration`` s; return the wall and CPU (this thread's) us per
    cycle, and each cycle's wall ns."""
    get, put, clock = pool.get, pool.put, time.perf_counter_ns
    times: list[int] = []
    cpu = time.thread_time()
    start = time.perf_counter()
    end = start + duration
    while time.perf_counter() < end:
        for _ in range(100):
            t0 = clock()
            conn = get()
            if query:
                select_1(conn)
            put(conn)
            times.append(clock() - t0)
    wall = (time.perf_counter() - start) / len(times) * 1e6
    return wall, (time.thread_time() - cpu) / len(times) * 1e6, times


def percentile(ordered: list[int], fraction: float) -> float:
    """Return a percentile of sorted cycle times (ns), in us."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000


def run(reps: int, duration: float) -> None:
    rows = [(d, busy, m) for d in DRIVERS for busy in (False, True) for m in MODES]
    pools = {(d, m): make_pool(d, m) for d in DRIVERS for m in MODES}
    per_cycle: dict[tuple[str, bool, str], list[float]] = {row: [] for row in rows}
    cpu: dict[tuple[str, bool, str], list[float]] = {row: [] for row in rows}
    cycles: dict[tuple[str, bool, str], list[int]] = {row: [] for row in rows}
    try:
        for _ in range(reps):
            for driver, busy, mode in rows:
                with probe(mode), busy_thread(busy):
                    mean, used, times = trial(pools[driver, mode], duration, mode == "query")
                per_cycle[driver, busy, mode].append(mean)
                cpu[driver, busy, mode].append(used)
                cycles[driver, busy, mode].extend(times)
    finally:
        for pool in pools.values():
            pool.close()
    report(per_cycle, cpu, cycles, reps, duration)


def report(
    per_cycle: dict[tuple[str, bool, str], list[float]],
    cpu: dict[tuple[str, bool, str], list[float]],
    cycles: dict[tuple[str, bool, str], list[int]],
    reps: int,
    duration: float,
) -> None:
    """Print one line a row: median wall and CPU us, tail percentiles of single cycles,
    and the paired ratio and difference to window (also as a share of a checkout with a
    query), all on wall time."""
    print(f"{reps} repetitions x {duration} s a row; us per checkout+return (median)")
    print(
        f"{'driver':9} {'beside':12} {'mode':7} {'us':>7} {'cpu us':>7} {'p99 us':>8} "
        f"{'p99.9 us':>9} {'x window':>9} {'+us':>7} {'% query':>8}"
    )
    for driver, busy, mode in per_cycle:
        base = per_cycle[driver, busy, "window"]
        query = per_cycle[driver, busy, "query"]
        mine = per_cycle[driver, busy, mode]
        ratio = statistics.median(m / b for m, b in zip(mine, base, strict=True))
        added = statistics.median(m - b for m, b in zip(mine, base, strict=True))
        share = statistics.median(
            (m - b) / q * 100 for m, b, q in zip(mine, base, query, strict=True)
        )
        beside = "busy thread" if busy else "nothing"
        ordered = sorted(cycles[driver, busy, mode])
        print(
            f"{driver:9} {beside:12} {mode:7} {statistics.median(mine):7.2f} "
            f"{statistics.median(cpu[driver, busy, mode]):7.2f} "
            f"{percentile(ordered, 0.99):8.1f} {percentile(ordered, 0.999):9.1f} "
            f"{ratio:9.2f} {added:7.2f} {share:8.1f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=7, help="interleaved repetitions")
    parser.add_argument("--duration", type=float, default=0.2, help="seconds a row, a rep")
    args = parser.parse_args(argv)
    run(args.reps, args.duration)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
