"""Smoke tests of the Django example (``examples/django_app``), run for real on PostgreSQL
through ``dbapi_pool.django.postgresql`` (psycopg 3, as Django picks): ``manage.py
migrate`` into a schema private to the test run, then each server on a private loopback
port (gunicorn with gevent workers, gunicorn with gthread workers, uvicorn over ASGI),
200 concurrent requests while ``pg_stat_activity`` is sampled (no process may hold more
than ``max_size`` sessions), and every pool's ``in_use`` back to 0 afterwards (Django gives
the connection back at the end of each request)."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django  # noqa: F401  (the test extra installs them: missing is a failure)
import psycopg  # noqa: F401
import psycopg2  # counts the sessions
import pytest
from support import (
    CONCURRENT,
    MAX_SIZE,
    PG,
    TIMEOUT,
    ServerProcess,
    expected_items,
    fetch,
    free_port,
    hammer,
    hammer_sampled,
    poll,
    running,
    sessions,
)

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "examples" / "django_app"


@dataclass(frozen=True)
class Flavour:
    """How to serve the Django project, and what its pools should look like."""

    name: str
    modules: tuple[str, ...]  # skip the test without these
    workers: int  # processes with a pool of their own
    command: Callable[[int], list[str]]  # port -> argv
    backend: str  # the pools' dbapi-pool backend
    stopped: str  # logged once the server has shut down in order


def _gunicorn(worker: str, *more: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "gunicorn", "-k", worker, "-w", "2", *more),
            *("--bind", f"127.0.0.1:{port}", "--no-control-socket", "project.wsgi"),
        ]

    return command


def _uvicorn(port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "project.asgi:application", "--lifespan", "off"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
    ]


FLAVOURS = {
    "gunicorn_gevent": Flavour(
        "gunicorn_gevent",
        ("gunicorn", "gevent"),
        2,
        _gunicorn("gevent", "--worker-connections", "1000"),
        "gevent",
        "Shutting down: Master",
    ),
    "gunicorn_gthread": Flavour(
        "gunicorn_gthread",
        ("gunicorn",),
        2,
        _gunicorn("gthread", "--threads", "8"),
        "threads",
        "Shutting down: Master",
    ),
    "uvicorn_asgi": Flavour(
        "uvicorn_asgi", ("uvicorn",), 1, _uvicorn, "threads", "Finished server process"
    ),
}


def project_env(schema: str, app_name: str) -> dict[str, str]:
    """Return the environment of the project's processes: this tree's dbapi-pool, the
    private schema, and the sessions' application_name prefix."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(PROJECT)]),
        "EXAMPLE_DB_SCHEMA": schema,
        "EXAMPLE_APP_NAME": app_name,
    }


@pytest.fixture(scope="module")
def schema() -> Iterator[str]:
    """Make a schema of this test run and migrate the project into it (a subprocess)."""
    name = f"django_example_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(PG)
    conn.autocommit = True
    try:
        conn.cursor().execute(f"CREATE SCHEMA {name}")
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=PROJECT,
            env=project_env(name, f"ex-migrate-{uuid.uuid4().hex[:8]}"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        assert "Applying items.0002_items... OK" in migrate.stdout, migrate.stdout
        yield name
    finally:
        conn.cursor().execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.close()


class Server(ServerProcess):
    """The project under one server, on a private loopback port, logging to a file."""

    def __init__(self, flavour: Flavour, schema: str, tmp_path: Path) -> None:
        self.flavour = flavour
        self.app_name = f"ex-{uuid.uuid4().hex[:12]}"
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(
            flavour.command(port),
            cwd=PROJECT,
            env=project_env(schema, self.app_name),
            log=tmp_path / "server.log",
        )


@pytest.fixture(params=sorted(FLAVOURS))
def server(request: pytest.FixtureRequest, schema: str, tmp_path: Path) -> Iterator[Server]:
    """Serve the project; stop the server in any case."""
    flavour = FLAVOURS[request.param]
    for module in flavour.modules:  # installed by the test extra: missing is a failure
        importlib.import_module(module)
    yield from running(Server(flavour, schema, tmp_path), flavour.name)


def pools_by_pid(server: Server, burst: int = 8) -> dict[int, dict[str, Any]]:
    """GET ``/pool`` ``burst`` times at once (so that every worker may answer); return
    the last answer of each process, by pid."""
    answers: dict[int, dict[str, Any]] = {}

    def one() -> None:
        status, body = fetch(server.url + "/pool")
        assert status == 200, body
        answers[body["pid"]] = body

    threads = [threading.Thread(target=one) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    return answers


def all_returned(server: Server, pids: set[int]) -> dict[int, dict[str, Any]]:
    """Wait until each of ``pids`` answers ``/pool`` with ``in_use`` 0; return the last
    answers (connections go back when Django ends each request)."""
    seen: dict[int, dict[str, Any]] = {}

    def attempt() -> dict[int, dict[str, Any]] | None:
        seen.update(pools_by_pid(server))
        done = pids <= seen.keys() and all(seen[pid]["in_use"] == 0 for pid in pids)
        return seen if done else None

    return poll(f"in_use 0 in each of {sorted(pids)}", attempt, timeout=30)


def test_health_items_and_a_missing_item(server: Server) -> None:
    assert server.get("/health") == (200, {"status": "ok"})
    assert server.get("/item/7") == (200, {"id": 7, "name": "item 7"})
    assert server.get("/item/1000") == (200, {"id": 1000, "name": "item 1000"})
    assert server.get("/item/1001") == (404, {"error": "no item 1001"})


def test_concurrent_requests_use_at_most_max_size_sessions_per_worker(server: Server) -> None:
    answers, sampler = hammer_sampled(server.url, server.app_name)
    assert answers == expected_items()
    assert sampler.samples >= 2
    assert 1 <= len(sampler.peaks) <= server.flavour.workers, sampler.peaks
    assert all(1 <= peak <= MAX_SIZE for peak in sampler.peaks.values()), sampler.peaks
    pids = {int(name.rsplit("-", 1)[1]) for name in sampler.peaks}
    pools = all_returned(server, pids)
    for pid in pids:
        assert pools[pid]["backend"] == server.flavour.backend, pools[pid]
        assert 1 <= pools[pid]["size"] <= MAX_SIZE, pools[pid]
        # psycopg 3 waits through gevent's hub by itself (psycogreen patches only
        # psycopg2), so the gevent pools call it directly rather than in OS threads
        assert pools[pid]["offloaded"] is False, pools[pid]
    if server.flavour.backend == "gevent":
        # and a worker serves requests side by side: several connections at once
        assert max(sampler.peaks.values()) >= 2, sampler.peaks


def test_stats_describe_the_pool(server: Server) -> None:
    hammer(server.url)

    def settled() -> dict[str, Any] | None:
        status, stats = server.get("/stats")
        assert status == 200
        return stats if stats["in_use"] == 0 else None

    stats = poll("in_use 0 in /stats", settled, timeout=30)
    assert (stats["name"], stats["max_size"], stats["waiting"]) == ("django:default", 8, 0)
    assert 1 <= stats["size"] <= MAX_SIZE
    assert stats["checkouts"] >= 1
    assert stats["timeouts"] == 0
    assert stats["use_time"]["count"] == stats["checkouts"]
    # gunicorn's workers split the requests; uvicorn's one process served them all
    if server.flavour.workers == 1:
        assert stats["checkouts"] == CONCURRENT


def test_the_sessions_end_with_the_server(server: Server) -> None:
    assert server.get("/item/1") == (200, {"id": 1, "name": "item 1"})
    assert sum(sessions(server.app_name).values()) >= 1
    server.stop()
    # uvicorn ends its graceful shutdown by re-raising the signal
    assert server.process.returncode in (0, -signal.SIGTERM), server.process.returncode
    assert server.flavour.stopped in server.final_output, server.final_output
    poll("the sessions to end", lambda: not sessions(server.app_name) or None)
