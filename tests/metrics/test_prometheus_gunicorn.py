"""The documented gunicorn set-up, for real: 2 sync workers, a pool each on PostgreSQL,
``MultiProcessPoolMetrics`` in each, ``/metrics`` through ``MultiProcessCollector``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Samples, free_port, get, parse, poll, terminate, value

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
SRC = str(HERE.parents[1] / "src")
WORKERS, MAX_SIZE = 2, 3


class Gunicorn:
    """A gunicorn server of ``apps/gunicorn_app.py`` on a private loopback port."""

    def __init__(self, tmp_path: Path) -> None:
        folder = tmp_path / "multiproc"
        folder.mkdir()
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = open(tmp_path / "gunicorn.log", "w+b")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": SRC}
        command = [
            *(sys.executable, "-m", "gunicorn", "--workers", str(WORKERS)),
            *("--worker-class", "sync", "--bind", self.url.removeprefix("http://")),
            *("--chdir", str(APPS), "--config", str(APPS / "gunicorn_conf.py")),
            "--no-control-socket",  # gunicorn 27 shares one at ~/.gunicorn otherwise
            "gunicorn_app:app",
        ]
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log)
        self.requests = 0
        self.pids: set[int] = set()

    def request(self) -> int:
        """Make one checkout request; return the pid of the worker that served it."""
        pid = int(get(self.url + "/"))
        self.requests += 1
        self.pids.add(pid)
        return pid

    def reach_every_worker(self) -> None:
        """Make requests until every worker has served one (the kernel picks who accepts)."""

        def reached() -> bool | None:
            self.request()
            return len(self.pids) == WORKERS or None

        poll("every worker to serve a request", reached)

    def metrics(self) -> Samples:
        return parse(get(self.url + "/metrics"))

    def stop(self) -> None:
        terminate(self.process)
        self.log.seek(0)
        output = self.log.read().decode(errors="replace")
        self.log.close()
        assert "Traceback" not in output, output


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Gunicorn]:
    gunicorn = Gunicorn(tmp_path)
    try:
        poll("gunicorn to answer", gunicorn.request)
        yield gunicorn
    finally:
        gunicorn.stop()


def test_metrics_add_up_the_pools_of_every_worker(server: Gunicorn) -> None:
    server.reach_every_worker()
    while server.requests < 20:
        server.request()
    samples = server.metrics()
    n = server.requests
    assert value(samples, "dbapi_pool_checkouts_total", pool="web") == n
    assert value(samples, "dbapi_pool_use_seconds_count", pool="web") == n
    assert value(samples, "dbapi_pool_wait_seconds_bucket", pool="web", le="+Inf") == n
    assert value(samples, "dbapi_pool_use_seconds_sum", pool="web") > 0
    assert value(samples, "dbapi_pool_max_connections", pool="web") == WORKERS * MAX_SIZE
    assert value(samples, "dbapi_pool_connections", pool="web", state="used") == 0
    connects = value(samples, "dbapi_pool_connects_total", pool="web")
    assert WORKERS <= connects == value(samples, "dbapi_pool_create_seconds_count", pool="web")
    assert value(samples, "dbapi_pool_connections", pool="web", state="idle") == connects


def test_an_exited_worker_keeps_its_counts_and_leaves_the_gauges(server: Gunicorn) -> None:
    server.reach_every_worker()
    victim = next(iter(server.pids))
    os.kill(victim, signal.SIGKILL)
    first = set(server.pids)

    def settled() -> Samples | None:
        # gunicorn replaces the worker; child_exit drops the dead one's live gauges.
        server.request()
        samples = server.metrics()
        replaced = bool(server.pids - first)
        max_connections = value(samples, "dbapi_pool_max_connections", pool="web")
        return samples if replaced and max_connections == WORKERS * MAX_SIZE else None

    samples = poll("the replacement worker and the dead one's gauges dropped", settled)
    assert value(samples, "dbapi_pool_checkouts_total", pool="web") == server.requests
