"""Observability of green pools with real drivers: print one JSON line per driver.

Usage: ``python metrics_scenarios.py MODE`` (``gevent-patched``, ``eventlet-patched``,
``gevent``, ``eventlet``). For psycopg2 (PostgreSQL) and PyMySQL (MariaDB), a pool of 2 is
instrumented with both exporters (an OpenTelemetry SDK in-memory reader and a Prometheus
``PoolCollector`` on a registry of its own) and a listener; green threads query through
it, two of them hold its connections while a third times out; the scenario reports what
the exporters, the listener, ``holders()`` and the ``PoolTimeout`` saw.
test_metrics_green.py checks it.
"""

from __future__ import annotations

from greenmode import BACKEND, MODE, result_of, spawn  # monkey-patches: before every other import

# isort: split

import json
from typing import Any

import psycopg2
import pymysql
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest

from dbapi_pool import ConnectionPool, PoolTimeout, tagged
from dbapi_pool.metrics import otel
from dbapi_pool.metrics.prometheus import PoolCollector

DRIVERS: list[tuple[str, Any, dict[str, Any]]] = [
    ("psycopg2", psycopg2, {"host": "127.0.0.1", "user": "postgres", "dbname": "test"}),
    (
        "pymysql",
        pymysql,
        {"host": "127.0.0.1", "user": "root", "password": "", "database": "test"},
    ),
]
QUERIES = 20


class Heard:
    """Count the events."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}

    def _count(self, event: str) -> None:
        self.events[event] = self.events.get(event, 0) + 1

    def on_connect(self, pool: Any, conn: Any, seconds: float) -> None:
        self._count("connect")

    def on_checkout(self, pool: Any, conn: Any, waited: float) -> None:
        self._count("checkout")

    def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
        self._count("checkin")

    def on_wait(self, pool: Any) -> None:
        self._count("wait")

    def on_timeout(self, pool: Any, waited: float) -> None:
        self._count("timeout")


def otel_values(reader: InMemoryMetricReader, name: str) -> dict[str, Any]:
    """Return ``{metric: value or histogram count}`` of the pool ``name``."""
    found: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attrs = dict(point.attributes or {})
                    if attrs.get("db.client.connection.pool.name") != name:
                        continue
                    key = metric.name
                    if "db.client.connection.state" in attrs:
                        key += "." + attrs["db.client.connection.state"]
                    found[key] = getattr(point, "value", None)
                    if found[key] is None:
                        found[key] = point.count
    return found


def query(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.fetchone()
        cur.close()


def run(driver: str, module: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    name = f"green-{driver}"
    pool = ConnectionPool(module, backend=BACKEND, max_size=2, timeout=10, name=name, **kwargs)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    otel.instrument(pool, meter_provider=provider)
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool))
    heard = Heard()
    pool.add_listener(heard)
    for worker in [spawn(query, pool) for _ in range(QUERIES)]:
        result_of(worker)
    held: list[Any] = []

    def hold(tag: str) -> None:
        with tagged(tag):
            held.append(pool.get())

    for holder in [spawn(hold, f"holder-{i}") for i in range(2)]:
        result_of(holder)
    try:
        pool.get(timeout=0.1)
        message = ""
    except PoolTimeout as exc:
        message = str(exc)
    holders = pool.holders()
    scraped = generate_latest(registry).decode()
    values = otel_values(reader, name)
    for conn in held:
        pool.put(conn)
    pool.close()
    provider.shutdown()
    return {
        "driver": driver,
        "offloaded": pool.offloaded,
        "events": heard.events,
        "otel": values,
        "prometheus_checkouts": f'dbapi_pool_checkouts_total{{pool="{name}"}} {QUERIES + 2}.0'
        in scraped,
        "prometheus_used": f'dbapi_pool_connections{{pool="{name}",state="used"}} 2.0' in scraped,
        "holders": [[h.tag, h.holder] for h in holders],
        "timeout_names_holders": "[holder-0]" in message and "[holder-1]" in message,
        "stats_wait_count": pool.stats().wait_time.count,
        "stats_waits": pool.stats().waits,
    }


def main() -> None:
    for driver, module, kwargs in DRIVERS:
        print(json.dumps({"mode": MODE, **run(driver, module, kwargs)}), flush=True)


if __name__ == "__main__":
    main()
