"""Smoke tests of the example applications, run for real: each server (gunicorn with gevent
workers for Flask, uvicorn for Starlette) on a private loopback port, on PostgreSQL, with
an ``items`` table in a schema private to the test run, and 200 concurrent requests while
``pg_stat_activity`` is sampled: no worker may hold more than ``max_size`` sessions."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from support import (
    CONCURRENT,
    MAX_SIZE,
    PG,
    TIMEOUT,
    ServerProcess,
    expected_items,
    free_port,
    hammer,
    hammer_sampled,
    poll,
    running,
    sessions,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SETUP_SQL = ROOT / "examples" / "setup_items.sql"


@dataclass(frozen=True)
class Example:
    """How to start one example server, and what it should look like."""

    name: str
    modules: tuple[str, ...]  # skip the test without these
    workers: int  # processes with a pool of their own
    command: Callable[[str, int], list[str]]  # (host, port) -> argv
    stopped: str  # logged once the server has shut down in order


def _gunicorn(host: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "gunicorn", "-c", "examples/flask_gevent/gunicorn.conf.py"),
        *("--bind", f"{host}:{port}", "--no-control-socket"),
        "examples.flask_gevent.app:app",
    ]


def _uvicorn(host: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "examples.starlette_uvicorn.app:app"),
        *("--host", host, "--port", str(port), "--no-access-log"),
    ]


EXAMPLES = {
    "flask_gevent": Example(
        "flask_gevent",
        ("flask", "gunicorn", "gevent", "psycogreen"),
        2,
        _gunicorn,
        "Shutting down: Master",
    ),
    "starlette_uvicorn": Example(
        "starlette_uvicorn", ("starlette", "uvicorn"), 1, _uvicorn, "Application shutdown complete"
    ),
}


class Server(ServerProcess):
    """One example server on a private loopback port, logging to a file."""

    def __init__(self, example: Example, schema: str, tmp_path: Path) -> None:
        self.example = example
        self.app_name = f"ex-{uuid.uuid4().hex[:12]}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        multiproc = tmp_path / "prometheus"
        multiproc.mkdir()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "EXAMPLE_DSN": f"{PG} options='-c search_path={schema}'",
            "EXAMPLE_APP_NAME": self.app_name,
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        }
        super().__init__(
            example.command("127.0.0.1", port), cwd=ROOT, env=env, log=tmp_path / "server.log"
        )


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    """Create the items table with ``setup_items.sql`` in a schema of this test run."""
    name = f"examples_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(PG)
    conn.autocommit = True
    try:
        cursor = conn.cursor()
        cursor.execute(f"CREATE SCHEMA {name}")
        cursor.execute(f"SET search_path = {name}")
        cursor.execute(SETUP_SQL.read_text())
        yield name
    finally:
        conn.cursor().execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.close()


@pytest.fixture(params=sorted(EXAMPLES))
def server(request: pytest.FixtureRequest, schema: str, tmp_path: Path) -> Iterator[Server]:
    """Start the example server; stop it in any case."""
    example = EXAMPLES[request.param]
    for module in example.modules:  # installed by the test extra: missing is a failure
        importlib.import_module(module)
    yield from running(Server(example, schema, tmp_path), example.name)


def test_health_items_and_a_missing_item(server: Server) -> None:
    assert server.get("/health") == (200, {"status": "ok"})
    assert server.get("/item/7") == (200, {"id": 7, "name": "item 7"})
    assert server.get("/item/1000") == (200, {"id": 1000, "name": "item 1000"})
    assert server.get("/item/1001") == (404, {"error": "no item 1001"})


def test_concurrent_requests_use_at_most_max_size_sessions_per_worker(server: Server) -> None:
    answers, sampler = hammer_sampled(server.url, server.app_name)
    assert answers == expected_items()
    assert sampler.samples >= 2
    assert 1 <= len(sampler.peaks) <= server.example.workers, sampler.peaks
    assert all(1 <= peak <= MAX_SIZE for peak in sampler.peaks.values()), sampler.peaks


def test_stats_describe_the_pool(server: Server) -> None:
    hammer(server.url)
    status, stats = server.get("/stats")
    assert status == 200
    assert (stats["name"], stats["max_size"], stats["in_use"], stats["waiting"]) == (
        "web",
        MAX_SIZE,
        0,
        0,
    )
    assert 1 <= stats["size"] <= MAX_SIZE
    assert stats["checkouts"] >= 1
    assert stats["timeouts"] == 0
    assert stats["use_time"]["count"] == stats["checkouts"]
    # gunicorn's workers split the requests; uvicorn's one process served them all
    if server.example.workers == 1:
        assert stats["checkouts"] == CONCURRENT


def metric(text: str, name: str) -> float:
    """Return the value of the sample ``name{pool="web"}`` in a Prometheus text page."""
    prefix = name + '{pool="web"} '
    values = [line.removeprefix(prefix) for line in text.splitlines() if line.startswith(prefix)]
    assert len(values) == 1, (name, text)
    return float(values[0])


def test_metrics_count_every_worker(server: Server) -> None:
    importlib.import_module("prometheus_client")  # installed by the test extra
    hammer(server.url)
    with urllib.request.urlopen(server.url + "/metrics", timeout=TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode()
    workers = server.example.workers
    assert metric(text, "dbapi_pool_max_connections") == workers * MAX_SIZE

    def all_counted() -> bool | None:
        # each gunicorn worker writes its counts every 5 s; the answering one at once
        with urllib.request.urlopen(server.url + "/metrics", timeout=TIMEOUT) as response:
            page = response.read().decode()
        return metric(page, "dbapi_pool_checkouts_total") == CONCURRENT or None

    poll("every checkout in /metrics", all_counted, timeout=30)


def test_the_sessions_end_with_the_server(server: Server) -> None:
    assert server.get("/item/1") == (200, {"id": 1, "name": "item 1"})
    assert sum(sessions(server.app_name).values()) >= 1
    server.stop()
    # uvicorn ends its graceful shutdown by re-raising the signal
    assert server.process.returncode in (0, -signal.SIGTERM), server.process.returncode
    assert server.example.stopped in server.final_output, server.final_output
    poll("the sessions to end", lambda: not sessions(server.app_name) or None)
