"""End to end: a real Prometheus server scrapes PoolCollector's /metrics (a pool on the
real PostgreSQL after a known workload) and answers queries on the series.

A missing ``prometheus`` binary fails the test (CI installs the Debian package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from dbapi_pool import ConnectionPool
from dbapi_pool.metrics.prometheus import PoolCollector

from .support import DASHBOARD, PG, TIMEOUT, free_port, get, poll, terminate

CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dbapi_pool
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


class Prometheus:
    """A private Prometheus server on a free loopback port, its data in a temporary folder."""

    def __init__(self, folder: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("the prometheus binary is missing: apt-get install prometheus")
        config = folder / "prometheus.yml"
        config.write_text(CONFIG.format(port=target_port))
        self.data = folder / "data"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(folder / "prometheus.log", "w+b")  # noqa: SIM115 (closed in stop)
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address={self.url.removeprefix('http://')}",
        ]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self) -> bool | None:
        if self.process.poll() is not None:
            self.log.seek(0)
            raise AssertionError(f"prometheus exited: {self.log.read().decode()[-2000:]}")
        return "Ready" in get(self.url + "/-/ready") or None

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Return the result vector of an instant query."""
        answer = json.loads(
            get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        )
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def one(self, promql: str) -> float:
        """Wait for the query to return one series; return its value."""
        result = poll(f"prometheus to answer {promql}", lambda: self.query(promql) or None)
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def stop(self) -> None:
        terminate(self.process)
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    pool = ConnectionPool(psycopg2, **PG, name="e2e", max_size=3)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def exporter(pool: ConnectionPool) -> Iterator[int]:
    """Serve PoolCollector(pool) on a free loopback port; yield the port."""
    registry = CollectorRegistry()
    collector = PoolCollector(pool)
    registry.register(collector)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
        collector.close()


@pytest.fixture
def prometheus(pool: ConnectionPool, exporter: int, tmp_path: Path) -> Iterator[Prometheus]:
    """Run 25 checkouts, check out one more and hold it, then start Prometheus."""
    for _ in range(25):
        with pool.connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
    held = pool.get()  # one connection in use while Prometheus scrapes
    server = Prometheus(tmp_path, exporter)
    try:
        poll("prometheus to be ready", server.ready)
        yield server
    finally:
        server.stop()
        pool.put(held)
    assert not server.data.exists()


def test_prometheus_scrapes_the_pools_series_with_the_expected_values(
    pool: ConnectionPool, prometheus: Prometheus
) -> None:
    assert prometheus.one('up{job="dbapi_pool"}') == 1
    assert prometheus.one('dbapi_pool_checkouts_total{pool="e2e"}') == 26
    assert prometheus.one('dbapi_pool_connections{pool="e2e",state="used"}') == 1
    assert prometheus.one('dbapi_pool_max_connections{pool="e2e"}') == 3
    assert prometheus.one('dbapi_pool_use_seconds_count{pool="e2e"}') == 25
    assert prometheus.one('dbapi_pool_wait_seconds_count{pool="e2e"}') == 26
    connects = pool.stats().connects
    assert prometheus.one('dbapi_pool_create_seconds_count{pool="e2e"}') == connects
    p50 = prometheus.one('histogram_quantile(0.5, dbapi_pool_use_seconds_bucket{pool="e2e"})')
    assert 0 < p50 < 10
    assert prometheus.one('sum(dbapi_pool_closes_total{pool="e2e"})') == 0


def test_every_dashboard_query_runs_and_finds_the_pool(prometheus: Prometheus) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$pool", "e2e")
            # Rates need two scrapes: wait until the query finds the pool's series.
            result = poll(f"a result for {expr}", lambda e=expr: prometheus.query(e) or None)
            assert {series["metric"].get("pool") for series in result} == {"e2e"}, expr
    variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "pool")
    metric = re.fullmatch(r"label_values\((\w+), pool\)", variable["query"]["query"])
    assert metric is not None
    query = urllib.parse.urlencode({"match[]": metric[1]})
    values = json.loads(get(f"{prometheus.url}/api/v1/label/pool/values?{query}"))["data"]
    assert values == ["e2e"]
