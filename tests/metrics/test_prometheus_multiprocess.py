"""MultiProcessPoolMetrics: pools' stats written to prometheus_client's multiprocess files.

Multiprocess mode is chosen when prometheus_client is imported, so each scenario runs in a
fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set; it prints what a
``MultiProcessCollector`` scrape of the folder shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.metrics.prometheus import MultiProcessPoolMetrics

from .support import Samples, parse, value

SRC = str(Path(__file__).resolve().parents[2] / "src")

PRELUDE = """
import sqlite3, sys
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from dbapi_pool import ConnectionPool
from dbapi_pool.metrics.prometheus import MultiProcessPoolMetrics

def work(pool, n):
    for _ in range(n):
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")

def show():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    sys.stdout.write(generate_latest(registry).decode())
    sys.stdout.write("# END\\n")
"""


def run(code: str, folder: Path) -> list[Samples]:
    """Run the scenario with ``folder`` as PROMETHEUS_MULTIPROC_DIR; return each show()."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": SRC}
    script = PRELUDE + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [parse(part) for part in done.stdout.split("# END\n")[:-1]]


def test_counters_and_histograms_add_only_what_changed_since_the_last_update(
    tmp_path: Path,
) -> None:
    code = """
    pool = ConnectionPool(sqlite3, database=":memory:", name="mp", max_size=3, max_idle=0)
    metrics = MultiProcessPoolMetrics(pool)
    work(pool, 4)
    metrics.update()
    metrics.update()  # nothing changed: nothing added
    work(pool, 3)
    MultiProcessPoolMetrics(pool).update()  # a second writer adds only the change too
    metrics.update()
    show()
    """
    (samples,) = run(code, tmp_path)
    assert value(samples, "dbapi_pool_checkouts_total", pool="mp") == 7
    assert value(samples, "dbapi_pool_connects_total", pool="mp") == 7
    assert value(samples, "dbapi_pool_closes_total", pool="mp", reason="close_on_return") == 7
    assert value(samples, "dbapi_pool_max_connections", pool="mp") == 3
    assert value(samples, "dbapi_pool_use_seconds_count", pool="mp") == 7
    assert value(samples, "dbapi_pool_wait_seconds_count", pool="mp") == 7
    assert value(samples, "dbapi_pool_create_seconds_bucket", pool="mp", le="+Inf") == 7


def test_scraped_buckets_and_sums_equal_the_pools_own(tmp_path: Path) -> None:
    code = """
    import json
    pool = ConnectionPool(sqlite3, database=":memory:", name="mp", max_size=2)
    metrics = MultiProcessPoolMetrics(pool)
    work(pool, 30)
    metrics.update()
    work(pool, 20)
    metrics.update()
    show()
    stats = pool.stats()
    print(json.dumps({
        name: [getattr(stats, name).sum, getattr(stats, name).cumulative()[::2]]
        for name in ("wait_time", "use_time", "create_time")
    }).replace("Infinity", "1e999"))
    """
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text, tail = done.stdout.split("# END\n")
    samples, expected = parse(text), __import__("json").loads(tail)
    for field, metric in (("wait_time", "wait"), ("use_time", "use"), ("create_time", "create")):
        total, pairs = expected[field]
        name = f"dbapi_pool_{metric}_seconds"
        assert value(samples, f"{name}_sum", pool="mp") == pytest.approx(total)
        for bound, count in [*pairs, (float("inf"), pairs[-1][1])]:
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            assert value(samples, f"{name}_bucket", pool="mp", le=le) == count


def test_a_closed_pool_keeps_its_totals_and_its_gauges_drop_to_zero(tmp_path: Path) -> None:
    code = """
    pool = ConnectionPool(sqlite3, database=":memory:", name="gone", max_size=5, min_size=1)
    metrics = MultiProcessPoolMetrics(pool)
    work(pool, 2)
    metrics.update()
    show()
    pool.close()
    metrics.update()
    show()
    """
    before, after = run(code, tmp_path)
    assert value(before, "dbapi_pool_max_connections", pool="gone") == 5
    assert value(before, "dbapi_pool_connections", pool="gone", state="idle") == 1
    assert value(after, "dbapi_pool_max_connections", pool="gone") == 0
    assert value(after, "dbapi_pool_connections", pool="gone", state="idle") == 0
    assert value(after, "dbapi_pool_checkouts_total", pool="gone") == 2


def test_a_new_pool_with_a_reused_name_adds_from_zero(tmp_path: Path) -> None:
    code = """
    first = ConnectionPool(sqlite3, database=":memory:", name="again")
    MultiProcessPoolMetrics(first).update()
    work(first, 5)
    MultiProcessPoolMetrics(first).update()
    first.close()
    second = ConnectionPool(sqlite3, database=":memory:", name="again")
    work(second, 2)
    MultiProcessPoolMetrics(second).update()
    show()
    """
    (samples,) = run(code, tmp_path)
    assert value(samples, "dbapi_pool_checkouts_total", pool="again") == 7


def test_start_updates_from_a_thread_until_stop(tmp_path: Path) -> None:
    code = """
    import time
    pool = ConnectionPool(sqlite3, database=":memory:", name="bg")
    metrics = MultiProcessPoolMetrics(pool)
    metrics.start(interval=0.05)
    work(pool, 3)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        if registry.get_sample_value("dbapi_pool_checkouts_total", {"pool": "bg"}) == 3:
            break
        time.sleep(0.05)
    metrics.stop()
    show()
    """
    (samples,) = run(code, tmp_path)
    assert value(samples, "dbapi_pool_checkouts_total", pool="bg") == 3


def test_without_multiprocess_dir_it_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    pool = ConnectionPool(__import__("sqlite3"), database=":memory:", name="nomp")
    try:
        with pytest.raises(RuntimeError, match="set PROMETHEUS_MULTIPROC_DIR"):
            MultiProcessPoolMetrics(pool)
    finally:
        pool.close()


def test_start_refuses_a_bad_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    pool = ConnectionPool(__import__("sqlite3"), database=":memory:", name="interval")
    try:
        metrics = MultiProcessPoolMetrics(pool)
        for bad in (0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="interval must be a positive number"):
                metrics.start(interval=bad)
    finally:
        pool.close()
