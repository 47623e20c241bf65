"""Measure the pool's hot paths for two source trees in the same run, paired.

Each trial is a fresh ``python`` whose ``PYTHONPATH`` points at one tree's ``src`` (and at this
directory, for the no-op driver ``compare_fakedb``); the trees alternate (old, new, then new,
old in the next repetition, and so on), scenario by scenario, so that a pair is a few seconds
apart. Each scenario uses only the public API that both trees have, with the same settings in
both (``handoff_after`` given explicitly where callers contend), except the ``defaults`` rows,
which leave ``handoff_after`` to each tree's default. Per scenario the table shows the median
ops/s of each tree, their spread, the median of the per-repetition ratios new/old, and the
p50/p99/p99.9 of per-operation latency (the median over repetitions of each trial's percentile).

    python benchmarks/before_after.py --old /tmp/before/src --new src

Run ``python benchmarks/before_after.py -h`` for the options.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: Called on a filled pool just before timing; returns what ends it after timing, which
#: returns extra fields for the trial's result (see ``instrumentation.py``).
Prepare = Callable[[Any], Callable[[], dict[str, Any]]]

nan = float("nan")

HERE = os.path.dirname(os.path.abspath(__file__))
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}
#: Scenario id -> what it measures (the table's legend).
SCENARIOS = {
    "fake.getput": "no-op driver, 1 thread: get(); put()",
    "fake.query": "no-op driver, 1 thread: get(); cursor(); execute(); put()",
    "fake.with": "no-op driver, 1 thread: with pool.connection(): pass",
    "fake.8on4": "no-op driver, 8 threads on 4 connections, handoff_after=0: get..put",
    "fake.8on4.defaults": "the same with each tree's default handoff_after (old 5 ms, new 0)",
    "async.with": "no-op driver, asyncio, 1 task: async with pool.connection(): pass",
    "async.64on8": "no-op driver, asyncio, 64 tasks on 8: async with ...: await execute()",
    "pg.1": "PostgreSQL psycopg2, 1 thread: get; cursor; SELECT 1; fetchone; close; put",
    "pg.16on8": "PostgreSQL psycopg2, 16 threads on 8 connections, handoff_after=0",
    "pg.16on8.defaults": "the same with each tree's default handoff_after (old 5 ms, new 0)",
    "mariadb.1": "MariaDB PyMySQL, 1 thread: get; cursor; SELECT 1; fetchone; close; put",
}


# --- the child: one scenario on one tree --------------------------------------------------


def _driver(kind: str) -> tuple[Any, dict[str, Any]]:
    if kind == "fake":
        import compare_fakedb

        return compare_fakedb, {}
    if kind == "pg":
        import psycopg2

        return psycopg2, dict(PG)
    import pymysql

    return pymysql, dict(MYSQL)


def _make_op(pool: Any, what: str) -> Callable[[], None]:
    """Return one operation of the scenario on ``pool``."""
    get, put = pool.get, pool.put

    def getput() -> None:
        put(get())

    def query() -> None:
        conn = get()
        conn.cursor().execute("SELECT 1")
        put(conn)

    def select1() -> None:
        conn = get()
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchone()
        cur.close()
        put(conn)

    def with_block() -> None:
        with pool.connection():
            pass

    return {"getput": getput, "query": query, "select1": select1, "with": with_block}[what]


def _thread_trial(
    pool: Any, op: Callable[[], None], threads: int, warmup: float, duration: float
) -> tuple[int, list[float]]:
    """Run ``op`` in a closed loop on ``threads`` threads; return ops and latencies in window."""
    clock = time.perf_counter
    start = clock() + warmup
    end = start + duration
    counts: list[int] = []
    samples: list[list[float]] = []

    def worker() -> None:
        lat: list[float] = []
        add = lat.append
        n = 0
        while True:
            t0 = clock()
            op()
            t1 = clock()
            if t1 >= end:
                break
            if t0 >= start:
                n += 1
                add(t1 - t0)
        counts.append(n)
        samples.append(lat)

    if threads == 1:
        worker()
    else:
        workers = [threading.Thread(target=worker) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    return sum(counts), [x for lat in samples for x in lat]


def run_sync(
    scenario: str, warmup: float, duration: float, prepare: Prepare | None = None
) -> tuple[int, list[float], dict[str, Any]]:
    """Run one thread scenario; return the ops and latencies of the window, and what
    ``prepare``'s finisher reported."""
    from dbapi_pool import ConnectionPool

    kind = scenario.split(".")[0]
    module, kwargs = _driver(kind)
    threads, size, what = 1, 1, {"fake": "query", "pg": "select1", "mariadb": "select1"}[kind]
    if scenario == "fake.getput":
        what = "getput"
    elif scenario == "fake.with":
        what = "with"
    elif ".8on4" in scenario:
        threads, size = 8, 4
    elif ".16on8" in scenario:
        threads, size = 16, 8
    if not scenario.endswith(".defaults"):
        kwargs["handoff_after"] = 0
    pool = ConnectionPool(module, min_size=size, max_size=size, **kwargs)
    try:
        held = [pool.get() for _ in range(size)]  # open them all before timing
        for conn in held:
            pool.put(conn)
        finish = prepare(pool) if prepare else dict
        try:
            count, lat = _thread_trial(pool, _make_op(pool, what), threads, warmup, duration)
        finally:
            extra = finish()
        return count, lat, extra
    finally:
        pool.close()


async def _async_trial(
    scenario: str, warmup: float, duration: float, prepare: Prepare | None = None
) -> tuple[int, list[float], dict[str, Any]]:
    import compare_fakedb

    from dbapi_pool import AsyncConnectionPool

    tasks, size = (1, 1) if scenario == "async.with" else (64, 8)
    pool = AsyncConnectionPool(compare_fakedb, min_size=size, max_size=size, handoff_after=0)
    await pool.open()
    finish: Callable[[], dict[str, Any]] = dict
    clock = time.perf_counter
    start = clock() + warmup
    end = start + duration
    lat: list[float] = []
    count = 0

    async def worker() -> None:
        nonlocal count
        while True:
            t0 = clock()
            async with pool.connection() as conn:
                if tasks > 1:
                    await conn.execute("SELECT 1")
            t1 = clock()
            if t1 >= end:
                return
            if t0 >= start:
                count += 1
                lat.append(t1 - t0)

    try:
        held = [await pool.get() for _ in range(size)]  # open them all before timing
        for conn in held:
            await pool.put(conn)
        finish = prepare(pool) if prepare else dict
        await asyncio.gather(*(worker() for _ in range(tasks)))
    finally:
        extra = finish()
        await pool.close()
    return count, lat, extra


def run_scenario(
    scenario: str, warmup: float, duration: float, prepare: Prepare | None = None
) -> dict[str, Any]:
    """Run one scenario (``prepare`` applied to its filled pool); return ops/s, the
    p50/p99/p99.9 latency (µs) and the fields ``prepare``'s finisher returned."""
    if scenario.startswith("async."):
        count, lat, extra = asyncio.run(_async_trial(scenario, warmup, duration, prepare))
    else:
        count, lat, extra = run_sync(scenario, warmup, duration, prepare)
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6 if lat else float("nan")  # noqa: E731
    out = {"ops": count / duration, "p50": pick(0.50), "p99": pick(0.99), "p999": pick(0.999)}
    return {**out, **extra}


def child(scenario: str, warmup: float, duration: float) -> None:
    """Run one scenario and print its result as one line of JSON."""
    print(json.dumps(run_scenario(scenario, warmup, duration)))


# --- the parent: alternate the trees and summarise ----------------------------------------


def trial(
    tree: str,
    scenario: str,
    args: argparse.Namespace,
    script: str = __file__,
    extra: Sequence[str] = (),
) -> dict[str, Any]:
    """Run ``scenario`` in a fresh interpreter on ``tree`` (``script --child scenario``,
    then ``extra`` arguments); return its result."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(tree), HERE]))
    cmd = [sys.executable, os.path.abspath(script), "--child", scenario, *extra]
    cmd += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"{scenario} {' '.join(extra)} on {tree} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median(xs: Sequence[float]) -> float:
    """Return the median of ``xs``."""
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarise(runs: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    """Return the table: per scenario, both trees' medians, spreads and the paired ratios."""
    head = (
        f"{'scenario':20} {'old ops/s':>10} {'spread':>7} {'new ops/s':>10} {'spread':>7} "
        f"{'new/old':>8} {'(min-max)':>12} {'old p50':>8} {'new p50':>8} {'old p99':>8} "
        f"{'new p99':>8} {'p99 new/old':>11} {'old p99.9':>9} {'new p99.9':>9}"
    )
    lines = [head]
    for scenario, by_tree in runs.items():
        old, new = by_tree["old"], by_tree["new"]
        ops_o, ops_n = [r["ops"] for r in old], [r["ops"] for r in new]
        ratios = [n / o for n, o in zip(ops_n, ops_o, strict=True)]
        p99r = [n["p99"] / o["p99"] for n, o in zip(new, old, strict=True)]
        mo, mn = median(ops_o), median(ops_n)

        def spread(xs: list[float], m: float) -> str:
            return f"{(max(xs) - min(xs)) / m:.0%}"

        lines.append(
            f"{scenario:20} {mo:10,.0f} {spread(ops_o, mo):>7} {mn:10,.0f} {spread(ops_n, mn):>7} "
            f"{median(ratios):8.3f} {f'{min(ratios):.2f}-{max(ratios):.2f}':>12} "
            f"{median([r['p50'] for r in old]):8.1f} {median([r['p50'] for r in new]):8.1f} "
            f"{median([r['p99'] for r in old]):8.1f} {median([r['p99'] for r in new]):8.1f} "
            f"{median(p99r):11.2f} {median([r.get('p999', nan) for r in old]):9.1f} "
            f"{median([r.get('p999', nan) for r in new]):9.1f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--old", default="/tmp/before/src", help="the 'before' tree's src directory")
    add("--new", default=os.path.join(HERE, "..", "src"), help="the 'after' tree's src")
    add("--reps", type=int, default=5, help="repetitions (tree order alternates)")
    add("--warmup", type=float, default=0.2, help="unmeasured seconds before each window")
    add("--duration", type=float, default=1.0, help="measured seconds per trial")
    add("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenario ids")
    add("--json", dest="json_path", metavar="PATH", help="write every trial's result to PATH")
    add("--child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Alternate the trees over every scenario and repetition; print the table."""
    args = parse_args(argv)
    if args.child:
        child(args.child, args.warmup, args.duration)
        return
    scenarios = args.scenarios.split(",")
    trees = {"old": args.old, "new": args.new}
    runs = {s: {"old": [], "new": []} for s in scenarios}  # type: dict[str, dict[str, list[Any]]]
    started = time.monotonic()
    for rep in range(args.reps):
        order = ["old", "new"] if rep % 2 == 0 else ["new", "old"]
        for scenario in scenarios:
            for name in order:
                runs[scenario][name].append(trial(trees[name], scenario, args))
        print(
            f"rep {rep + 1}/{args.reps} done, {time.monotonic() - started:.0f} s", file=sys.stderr
        )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; python {sys.version.split()[0]}")
    print(f"old: {os.path.abspath(args.old)}  new: {os.path.abspath(args.new)}")
    print(f"{args.reps} reps x {args.duration} s (+{args.warmup} s warm-up), trees alternating")
    print("ops/s and latency (µs, per operation) are medians over reps; new/old is the")
    print("median of per-rep ratios (min-max beside it); spread = (max - min) / median")
    print(summarise(runs))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
