"""The OpenTelemetry exporter: semantic-convention names, units, attributes and values,
read back through the SDK's in-memory reader after known workloads."""

from __future__ import annotations

import asyncio
import random
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    InMemoryMetricReader,
    Sum,
)

from dbapi_pool import (
    AsyncConnectionPool,
    AsyncDatabaseConnector,
    ConnectionPool,
    DatabaseConnector,
    PoolTimeout,
    TimingStats,
)
from dbapi_pool.metrics import otel
from dbapi_pool.testing.fakedb import FakeDatabase

POOL = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
BOUNDS = TimingStats().bounds

UNITS = {
    "db.client.connection.count": "{connection}",
    "db.client.connection.idle.max": "{connection}",
    "db.client.connection.idle.min": "{connection}",
    "db.client.connection.max": "{connection}",
    "db.client.connection.pending_requests": "{request}",
    "db.client.connection.timeouts": "{timeout}",
    "db.client.connection.create_time": "s",
    "db.client.connection.wait_time": "s",
    "db.client.connection.use_time": "s",
}


class Metrics:
    """One collection of an in-memory reader, looked up by name and attributes."""

    def __init__(self, reader: Collector) -> None:
        data = reader.get_metrics_data()
        self.by_name: dict[str, Any] = {}
        if data is not None:
            for resource in data.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        self.by_name[metric.name] = metric

    def points(self, name: str, state: str | None = None) -> list[Any]:
        """Return the data points of ``name`` (only those of ``state``, if given)."""
        metric = self.by_name.get(name)
        if metric is None:
            return []
        return [
            p for p in metric.data.data_points if state is None or p.attributes.get(STATE) == state
        ]

    def value(self, name: str, pool: str, state: str | None = None) -> Any:
        """Return the value (a histogram: the point) of the one point of ``name`` for
        ``pool``."""
        found = [p for p in self.points(name, state) if p.attributes[POOL] == pool]
        assert len(found) == 1, (name, pool, state, found)
        return found[0] if isinstance(self.by_name[name].data, Histogram) else found[0].value

    def count(self, pool: str, state: str) -> int:
        """Return ``db.client.connection.count`` of ``pool`` in ``state``."""
        return int(self.value("db.client.connection.count", pool, state))

    def pool_names(self, name: str = "db.client.connection.count") -> set[str]:
        """Return the pool names ``name`` has points for."""
        return {p.attributes[POOL] for p in self.points(name)}


class Collector:
    """An in-memory reader on a meter provider of its own."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)

    def instrument(self, target: Any, **options: Any) -> otel.Instrumentation:
        """Instrument ``target`` with this provider."""
        return otel.instrument(target, meter_provider=self.provider, **options)

    def collect(self) -> Metrics:
        """Collect once."""
        return Metrics(self.reader)


@pytest.fixture
def reader() -> Iterator[Collector]:
    """A collector; its provider is shut down after the test."""
    collector = Collector()
    yield collector
    collector.provider.shutdown()


def hold(pool: ConnectionPool, n: int) -> list[Any]:
    return [pool.get() for _ in range(n)]


def assert_histogram_matches(point: Any, timing: TimingStats) -> None:
    """The exported histogram is the pool's: bounds, bucket counts, count and sum."""
    assert tuple(point.explicit_bounds) == BOUNDS
    assert tuple(point.bucket_counts) == timing.counts
    assert point.count == timing.count
    assert point.sum == pytest.approx(timing.sum, rel=1e-9, abs=1e-12)


# -- names, units, kinds -----------------------------------------------------------------


def test_every_semantic_convention_instrument_is_exported_with_its_unit(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="orders")
    pool.put(pool.get())
    reader.instrument(pool)
    metrics = reader.collect()
    assert {name: metrics.by_name[name].unit for name in UNITS} == UNITS
    for name in UNITS:
        assert metrics.pool_names(name) == {"orders"}, name


def test_counts_are_up_down_counters_and_timeouts_a_monotonic_counter(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase())
    pool.put(pool.get())
    reader.instrument(pool)
    metrics = reader.collect()
    for name in UNITS:
        data = metrics.by_name[name].data
        if name.endswith("_time"):
            assert isinstance(data, Histogram), name
        else:
            assert isinstance(data, Sum), name
            assert data.is_monotonic == (name == "db.client.connection.timeouts"), name
            assert data.aggregation_temporality == AggregationTemporality.CUMULATIVE


# -- values ------------------------------------------------------------------------------


def test_two_held_and_one_idle_count_as_used_2_idle_1(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p", max_size=5, min_size=1)
    held = hold(pool, 3)
    pool.put(held.pop())
    reader.instrument(pool)
    metrics = reader.collect()
    assert (metrics.count("p", "used"), metrics.count("p", "idle")) == (2, 1)
    assert metrics.value("db.client.connection.max", "p") == 5
    assert metrics.value("db.client.connection.idle.max", "p") == 5
    assert metrics.value("db.client.connection.idle.min", "p") == 1
    assert metrics.value("db.client.connection.pending_requests", "p") == 0


def test_a_waiting_caller_is_a_pending_request(
    reader: Collector,
    make_pool: Callable[..., ConnectionPool],
    eventually: Callable[..., bool],
) -> None:
    pool = make_pool(FakeDatabase(), name="p", max_size=1)
    reader.instrument(pool)
    conn = pool.get()
    waiter = threading.Thread(target=lambda: pool.put(pool.get(timeout=10)))
    waiter.start()
    assert eventually(lambda: pool.stats().waiting == 1)
    assert reader.collect().value("db.client.connection.pending_requests", "p") == 1
    pool.put(conn)
    waiter.join()
    assert reader.collect().value("db.client.connection.pending_requests", "p") == 0


def test_a_pool_timeout_increments_timeouts(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p", max_size=1)
    reader.instrument(pool)
    assert reader.collect().value("db.client.connection.timeouts", "p") == 0
    conn = pool.get()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=0.01)
    assert reader.collect().value("db.client.connection.timeouts", "p") == 1
    pool.put(conn)


def test_histograms_count_the_checkouts_returns_and_connects(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(connect_delay=0.002), name="p", max_size=3)
    reader.instrument(pool)
    for _ in range(4):
        held = hold(pool, 3)
        for conn in held:
            pool.put(conn)
    stats = pool.stats()
    assert (stats.checkouts, stats.connects) == (12, 3)
    metrics = reader.collect()
    assert metrics.value("db.client.connection.wait_time", "p").count == 12
    assert metrics.value("db.client.connection.use_time", "p").count == 12
    assert metrics.value("db.client.connection.create_time", "p").count == 3
    for attr in ("wait_time", "use_time", "create_time"):
        point = metrics.value(f"db.client.connection.{attr}", "p")
        assert_histogram_matches(point, getattr(stats, attr))
    assert metrics.value("db.client.connection.create_time", "p").min >= 0.002


def test_histograms_false_leaves_them_out_and_keeps_the_rest(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p")
    handle = reader.instrument(pool, histograms=False)
    held = pool.get()
    metrics = reader.collect()
    assert metrics.value("db.client.connection.count", "p", "used") == 1
    for attr in ("wait_time", "use_time", "create_time"):
        assert not metrics.points(f"db.client.connection.{attr}")
    pool.put(held)
    assert reader.instrument(pool) is handle  # now with the histograms
    assert reader.collect().value("db.client.connection.use_time", "p").count == 1
    with pytest.raises(TypeError, match="histograms must be True or False"):
        reader.instrument(pool, histograms="no")


def test_each_collection_replays_only_what_is_new(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p")
    pool.put(pool.get())
    reader.instrument(pool)
    assert reader.collect().value("db.client.connection.use_time", "p").count == 1
    assert reader.collect().value("db.client.connection.use_time", "p").count == 1
    for _ in range(5):
        pool.put(pool.get())
    point = reader.collect().value("db.client.connection.use_time", "p")
    assert point.count == 6
    assert_histogram_matches(point, pool.stats().use_time)


@pytest.mark.parametrize("seed", range(5))
def test_replayed_values_stay_in_their_buckets_and_keep_the_sum(seed: int) -> None:
    rng = random.Random(seed)
    values = [0.0] * rng.randrange(3) + [10 ** rng.uniform(-7, 3.5) for _ in range(200)]
    counts = [0] * (len(BOUNDS) + 1)
    for value in values:
        counts[bisect_left(BOUNDS, value)] += 1
    pairs = otel.replay_values(counts, sum(values), BOUNDS)
    replayed = [0] * len(counts)
    for value, times in pairs:
        replayed[bisect_left(BOUNDS, value)] += times
    assert replayed == counts
    assert sum(v * n for v, n in pairs) == pytest.approx(sum(values), rel=1e-9)


def test_replayed_zeros_stay_zero() -> None:
    counts = [4] + [0] * len(BOUNDS)
    assert otel.replay_values(counts, 0.0, BOUNDS) == [(0.0, 4)]


def test_replayed_overflow_takes_the_rest_of_the_sum() -> None:
    counts = [0] * len(BOUNDS) + [2]
    [(value, times)] = otel.replay_values(counts, 5000.0, BOUNDS)
    assert (value, times) == (2500.0, 2)
    assert value > BOUNDS[-1]


# -- which pools ---------------------------------------------------------------------------


def test_a_connectors_later_pools_appear_under_their_own_names(
    reader: Collector,
) -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        connector.get("h1", "a").put(connector.get("h1", "a").get())
        reader.instrument(connector)
        assert reader.collect().pool_names() == {"h1/a"}
        pool_b = connector.get("h1", "b")
        held = hold(pool_b, 2)
        metrics = reader.collect()
        assert metrics.pool_names() == {"h1/a", "h1/b"}
        assert metrics.count("h1/b", "used") == 2
        assert metrics.count("h1/a", "idle") == 1
        assert metrics.value("db.client.connection.create_time", "h1/b").count == 2
        for conn in held:
            pool_b.put(conn)


def test_a_closed_pools_series_stop_after_a_last_histogram_replay(
    reader: Collector,
) -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        keep, gone = connector.get("h", "keep"), connector.get("h", "gone")
        reader.instrument(connector)
        reader.collect()
        gone.put(gone.get())
        gone.close()
        metrics = reader.collect()
        assert metrics.pool_names() == {"h/keep"}
        assert metrics.pool_names("db.client.connection.timeouts") == {"h/keep"}
        assert metrics.value("db.client.connection.use_time", "h/gone").count == 1
        assert keep.stats().checkouts == 0


def test_uninstrument_stops_the_series(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p")
    handle = reader.instrument(pool)
    assert reader.collect().pool_names() == {"p"}
    otel.uninstrument(pool)
    assert not handle.active
    assert reader.collect().pool_names() == set()
    with pytest.raises(ValueError, match="'p' is not instrumented"):
        otel.uninstrument(pool)


def test_instrumenting_twice_gives_one_handle_and_one_set_of_series(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    pool = make_pool(FakeDatabase(), name="p")
    pool.put(pool.get())
    assert reader.instrument(pool) is reader.instrument(pool)
    metrics = reader.collect()
    assert len(metrics.points("db.client.connection.count", "idle")) == 1
    assert metrics.value("db.client.connection.use_time", "p").count == 1


def test_a_pool_reached_directly_and_through_its_connector_is_reported_once(
    reader: Collector,
) -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        pool = connector.get("h", "d")
        pool.put(pool.get())
        reader.instrument(pool)
        reader.instrument(connector)
        metrics = reader.collect()
        assert len(metrics.points("db.client.connection.max")) == 1
        assert metrics.value("db.client.connection.wait_time", "h/d").count == 1
        otel.uninstrument(pool)
        assert reader.collect().pool_names() == {"h/d"}


def test_two_providers_get_their_own_series(make_pool: Callable[..., ConnectionPool]) -> None:
    collectors = [Collector(), Collector()]
    pool = make_pool(FakeDatabase(), name="p")
    pool.put(pool.get())
    handles = [collector.instrument(pool) for collector in collectors]
    assert handles[0] is not handles[1]
    for collector in collectors:
        assert collector.collect().value("db.client.connection.use_time", "p").count == 1
        collector.provider.shutdown()


# -- refusals ------------------------------------------------------------------------------


def test_refuses_what_is_not_a_pool(reader: Collector) -> None:
    with pytest.raises(TypeError, match="expected a pool or a DatabaseConnector, got dict"):
        reader.instrument({})


def test_refuses_a_closed_pool(reader: Collector, make_pool: Callable[..., ConnectionPool]) -> None:
    pool = make_pool(FakeDatabase(), name="shut")
    pool.close()
    with pytest.raises(ValueError, match="'shut' is closed"):
        reader.instrument(pool)


def test_refuses_a_meter_provider_that_is_not_one(
    make_pool: Callable[..., ConnectionPool],
) -> None:
    pool = make_pool(FakeDatabase(), name="p")
    with pytest.raises(TypeError, match="must be an OpenTelemetry MeterProvider, got str .*'p'"):
        otel.instrument(pool, meter_provider="nope")  # type: ignore[arg-type]


def test_refuses_a_second_open_pool_of_the_same_name(
    reader: Collector, make_pool: Callable[..., ConnectionPool]
) -> None:
    reader.instrument(make_pool(FakeDatabase(), name="twin"))
    with pytest.raises(ValueError, match="two open pools are named 'twin'"):
        reader.instrument(make_pool(FakeDatabase(), name="twin"))


# -- asyncio -------------------------------------------------------------------------------


def test_an_asyncio_pool_two_held_one_idle(reader: Collector) -> None:
    async def main() -> Metrics:
        async with AsyncConnectionPool(FakeDatabase(), name="aio", max_size=4) as pool:
            held = [await pool.get() for _ in range(3)]
            await pool.put(held.pop())
            reader.instrument(pool)
            metrics = await asyncio.to_thread(reader.collect)
            for conn in held:
                await pool.put(conn)
            return metrics

    metrics = asyncio.run(main())
    assert (metrics.count("aio", "used"), metrics.count("aio", "idle")) == (2, 1)
    assert metrics.value("db.client.connection.wait_time", "aio").count == 3
    assert metrics.value("db.client.connection.use_time", "aio").count == 1
    assert metrics.value("db.client.connection.create_time", "aio").count == 3


def test_an_async_connectors_databases_are_two_pool_names(reader: Collector) -> None:
    async def main() -> Metrics:
        connector = AsyncDatabaseConnector(FakeDatabase(), {"default": {}})
        reader.instrument(connector)
        for dbname in ("one", "two"):
            pool = connector.get("h", dbname)
            await pool.put(await pool.get())
        metrics = reader.collect()
        await connector.close()
        return metrics

    metrics = asyncio.run(main())
    assert metrics.pool_names() == {"h/one", "h/two"}
    assert metrics.count("h/two", "idle") == 1


# -- real servers --------------------------------------------------------------------------


def _real_workload(connector: DatabaseConnector, dbname: str, reader: Collector) -> None:
    reader.instrument(connector)
    pool = connector.get("127.0.0.1", dbname)
    held = hold(pool, 3)
    for conn in held:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        assert cursor.fetchall()[0][0] == 1
        cursor.close()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=0.01)
    pool.put(held.pop())
    metrics = reader.collect()
    name = f"127.0.0.1/{dbname}"
    assert metrics.pool_names() == {name}
    assert (metrics.count(name, "used"), metrics.count(name, "idle")) == (2, 1)
    assert metrics.value("db.client.connection.timeouts", name) == 1
    stats = pool.stats()
    for attr, expected in (("create_time", 3), ("wait_time", 3), ("use_time", 1)):
        point = metrics.value(f"db.client.connection.{attr}", name)
        assert point.count == expected, attr
        assert_histogram_matches(point, getattr(stats, attr))
    assert metrics.value("db.client.connection.create_time", name).sum > 0
    for conn in held:
        pool.put(conn)


@pytest.mark.postgres
def test_postgresql_psycopg2(reader: Collector) -> None:
    import psycopg2

    credentials = {"default": {"user": "postgres", "port": 5432}}
    with DatabaseConnector(psycopg2, credentials, max_size=3) as connector:
        _real_workload(connector, "test", reader)


@pytest.mark.mariadb
def test_mariadb_pymysql(reader: Collector) -> None:
    import pymysql

    credentials = {"default": {"user": "root", "port": 3306}}
    with DatabaseConnector(pymysql, credentials, max_size=3) as connector:
        _real_workload(connector, "test", reader)
