"""PoolCollector: the pools' stats() exported to a prometheus_client registry."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import psycopg2
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from dbapi_pool import AsyncConnectionPool, ConnectionPool, DatabaseConnector
from dbapi_pool.metrics.prometheus import (
    EXPORTED_BOUNDS,
    PoolCollector,
    exported_buckets,
    serve_metrics,
)

from .support import PG, Samples, free_port, get, parse, value


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[list[ConnectionPool]]:
    """Pools on a SQLite file (closed at the end); make more with ``new_pool``."""
    made: list[ConnectionPool] = []
    yield made
    for pool in made:
        pool.close()


def new_pool(made: list[ConnectionPool], tmp_path: Path, name: str, **kw: object) -> ConnectionPool:
    pool = ConnectionPool(sqlite3, database=str(tmp_path / "db.sqlite"), name=name, **kw)
    made.append(pool)
    return pool


def scrape(registry: CollectorRegistry) -> Samples:
    return parse(generate_latest(registry).decode())


def checkouts(pool: ConnectionPool, n: int) -> None:
    for _ in range(n):
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")


def test_scrape_reports_the_sizes_states_and_counters_of_the_pool(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    pool = new_pool(pools, tmp_path, "orders", max_size=4, max_idle=0)
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool))
    checkouts(pool, 5)  # max_idle=0: each connection is closed on return
    held = pool.get()
    try:
        samples = scrape(registry)
    finally:
        pool.put(held)
    assert value(samples, "dbapi_pool_checkouts_total", pool="orders") == 6
    assert value(samples, "dbapi_pool_connects_total", pool="orders") == 6
    assert value(samples, "dbapi_pool_connections", pool="orders", state="used") == 1
    assert value(samples, "dbapi_pool_connections", pool="orders", state="idle") == 0
    assert value(samples, "dbapi_pool_connections", pool="orders", state="connecting") == 0
    assert value(samples, "dbapi_pool_max_connections", pool="orders") == 4
    assert value(samples, "dbapi_pool_min_connections", pool="orders") == 0
    assert value(samples, "dbapi_pool_waiting", pool="orders") == 0
    assert value(samples, "dbapi_pool_closes_total", pool="orders", reason="close_on_return") == 5
    assert value(samples, "dbapi_pool_closes_total", pool="orders", reason="broken") == 0
    assert value(samples, "dbapi_pool_timeouts_total", pool="orders") == 0


def test_values_are_read_at_each_scrape(pools: list[ConnectionPool], tmp_path: Path) -> None:
    pool = new_pool(pools, tmp_path, "live")
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool))
    assert value(scrape(registry), "dbapi_pool_checkouts_total", pool="live") == 0
    checkouts(pool, 3)
    assert value(scrape(registry), "dbapi_pool_checkouts_total", pool="live") == 3


def test_histogram_counts_and_sums_are_the_pools_own_exactly(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    pool = new_pool(pools, tmp_path, "timed", max_size=2)
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool))
    checkouts(pool, 40)
    samples, stats = scrape(registry), pool.stats()
    for name, timing in (
        ("wait", stats.wait_time),
        ("use", stats.use_time),
        ("create", stats.create_time),
    ):
        metric = f"dbapi_pool_{name}_seconds"
        assert value(samples, f"{metric}_count", pool="timed") == timing.count > 0
        assert value(samples, f"{metric}_sum", pool="timed") == pytest.approx(timing.sum)
        cumulative = dict(timing.cumulative())
        buckets = {
            float(labels[0][1]): v
            for (sample, labels), v in samples.items()
            if sample == f"{metric}_bucket" and dict(labels)["pool"] == "timed"
        }
        assert sorted(buckets) == [*EXPORTED_BOUNDS, float("inf")]
        assert buckets == {bound: cumulative[bound] for bound in buckets}


def test_exported_bounds_are_every_other_bound_of_the_pool() -> None:
    assert len(EXPORTED_BOUNDS) == 19
    assert EXPORTED_BOUNDS[0] == pytest.approx(1e-6) and EXPORTED_BOUNDS[-1] == 1000.0
    assert all(b / a == pytest.approx(10**0.5) for a, b in pairwise(EXPORTED_BOUNDS))


def test_exported_buckets_end_with_inf_holding_every_value(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    pool = new_pool(pools, tmp_path, "inf")
    checkouts(pool, 3)
    pairs = exported_buckets(pool.stats().use_time)
    assert pairs[-1] == (float("inf"), 3)
    assert [n for _, n in pairs] == sorted(n for _, n in pairs)


def test_connector_pools_created_later_appear_and_closed_pools_disappear() -> None:
    connector = DatabaseConnector(psycopg2, {"default": {"user": PG["user"]}}, name="app")
    registry = CollectorRegistry()
    registry.register(PoolCollector(connector))
    try:
        assert "dbapi_pool_checkouts_total" not in {n for n, _ in scrape(registry)}
        first = connector.get("127.0.0.1", "test")
        with first.connection() as conn:
            conn.cursor().execute("SELECT 1")
        second = connector.get("localhost", "test")
        samples = scrape(registry)
        assert value(samples, "dbapi_pool_checkouts_total", pool="app:127.0.0.1/test") == 1
        assert value(samples, "dbapi_pool_checkouts_total", pool="app:localhost/test") == 0
        second.close()
        names = {dict(labels).get("pool") for _, labels in scrape(registry)}
        assert names == {"app:127.0.0.1/test"}
    finally:
        connector.close()
    assert scrape(registry) == {}


def test_an_async_pool_is_exported_too(tmp_path: Path) -> None:
    async def main() -> Samples:
        pool = AsyncConnectionPool(sqlite3, database=str(tmp_path / "a.db"), name="async")
        registry = CollectorRegistry()
        registry.register(PoolCollector(pool))
        try:
            async with pool.connection() as conn:
                cursor = await conn.cursor()
                await cursor.execute("SELECT 1")
            return scrape(registry)
        finally:
            await pool.close()

    samples = asyncio.run(main())
    assert value(samples, "dbapi_pool_checkouts_total", pool="async") == 1
    assert value(samples, "dbapi_pool_use_seconds_count", pool="async") == 1


def test_a_closed_pool_another_object_or_nothing_is_refused(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    pool = new_pool(pools, tmp_path, "shut")
    pool.close()
    with pytest.raises(ValueError, match="'shut' is closed"):
        PoolCollector(pool)
    with pytest.raises(TypeError, match="expected a pool or a DatabaseConnector, got str"):
        PoolCollector("postgresql://db")
    with pytest.raises(TypeError, match="at least one pool"):
        PoolCollector()


def test_two_open_pools_with_one_name_are_refused(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    PoolCollector(new_pool(pools, tmp_path, "twin"))
    with pytest.raises(ValueError, match="two open pools are named 'twin'"):
        PoolCollector(new_pool(pools, tmp_path, "twin"))


def test_a_connector_pool_whose_name_is_taken_is_skipped_with_a_warning(
    pools: list[ConnectionPool], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = new_pool(pools, tmp_path, "127.0.0.1/test")
    connector = DatabaseConnector(psycopg2, {"default": {"user": PG["user"]}})
    registry = CollectorRegistry()
    registry.register(PoolCollector(taken, connector))
    try:
        connector.get("127.0.0.1", "test")
        with caplog.at_level(logging.WARNING, logger="dbapi_pool.metrics"):
            samples = scrape(registry)
        assert value(samples, "dbapi_pool_max_connections", pool="127.0.0.1/test") == (
            taken.config.max_size
        )
        assert "two open pools are named '127.0.0.1/test'" in caplog.text
    finally:
        connector.close()


def test_a_second_collector_on_one_registry_is_refused(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    registry.register(PoolCollector(new_pool(pools, tmp_path, "a")))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(PoolCollector(new_pool(pools, tmp_path, "b")))


def test_several_pools_in_one_collector_each_have_their_series(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    a, b = new_pool(pools, tmp_path, "a"), new_pool(pools, tmp_path, "b", max_size=7)
    registry = CollectorRegistry()
    registry.register(PoolCollector(a, b, a))  # a pool given twice is exported once
    checkouts(a, 2)
    samples = scrape(registry)
    assert value(samples, "dbapi_pool_checkouts_total", pool="a") == 2
    assert value(samples, "dbapi_pool_checkouts_total", pool="b") == 0
    assert value(samples, "dbapi_pool_max_connections", pool="b") == 7


def test_close_stops_exporting_and_frees_the_name(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    collector = PoolCollector(new_pool(pools, tmp_path, "reused"))
    registry.register(collector)
    registry.unregister(collector)
    collector.close()
    assert collector.collect() == []
    PoolCollector(new_pool(pools, tmp_path, "reused"))  # the name is free again


def test_works_on_the_default_registry(pools: list[ConnectionPool], tmp_path: Path) -> None:
    pool = new_pool(pools, tmp_path, "default-registry")
    collector = PoolCollector(pool)
    REGISTRY.register(collector)
    try:
        checkouts(pool, 2)
        value_ = REGISTRY.get_sample_value(
            "dbapi_pool_checkouts_total", {"pool": "default-registry"}
        )
        assert value_ == 2
    finally:
        REGISTRY.unregister(collector)
        collector.close()


def test_serve_metrics_serves_a_scrape_until_stopped(
    pools: list[ConnectionPool], tmp_path: Path
) -> None:
    pool = new_pool(pools, tmp_path, "served")
    checkouts(pool, 2)
    port = free_port()
    stop = serve_metrics(pool, port=port)
    try:
        samples = parse(get(f"http://127.0.0.1:{port}/metrics"))
        assert value(samples, "dbapi_pool_checkouts_total", pool="served") == 2
    finally:
        stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    PoolCollector(new_pool(pools, tmp_path, "served"))  # stop() gave the name up
