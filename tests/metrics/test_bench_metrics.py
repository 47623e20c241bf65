"""``dbapi-pool bench --metrics-port``: the pool's Prometheus metrics while the run lasts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dbapi_pool.cli import main

from .support import Samples, free_port, poll, scrape

SRC = str(Path(__file__).resolve().parents[2] / "src")
QUICK = ["--duration", "0.3", "--quiet"]


def pool_samples(samples: Samples, name: str) -> dict[str, float]:
    """Return the samples of ``name`` by their pool label."""
    return {dict(labels)["pool"]: v for (sample, labels), v in samples.items() if sample == name}


def test_bench_serves_the_pools_metrics_while_it_runs() -> None:
    port = free_port()
    command = [sys.executable, "-m", "dbapi_pool", "bench", "--duration", "60", "--quiet"]
    command += ["--json", "--workers", "3", "--pool-size", "2", "--metrics-port", str(port)]
    env = {**os.environ, "PYTHONPATH": SRC}
    bench = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:

        def busy() -> Samples | None:
            samples = scrape(f"http://127.0.0.1:{port}/metrics")
            checkouts = pool_samples(samples, "dbapi_pool_checkouts_total")
            return samples if any(n >= 100 for n in checkouts.values()) else None

        samples = poll("the bench's metrics to show 100 checkouts", busy)
        assert list(pool_samples(samples, "dbapi_pool_max_connections").values()) == [2]
        assert any(n > 0 for n in pool_samples(samples, "dbapi_pool_use_seconds_count").values())
        bench.send_signal(signal.SIGINT)  # Ctrl-C: the run stops and reports
        out, err = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] and report["pool"]["checkouts"] >= 100
    with pytest.raises(OSError):  # the metrics server went with the run
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_metrics_port_without_prometheus_client_exits_2_naming_the_extra(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    monkeypatch.delitem(sys.modules, "dbapi_pool.metrics.prometheus", raising=False)
    status = main(["bench", *QUICK, "--metrics-port", str(free_port())])
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        "dbapi-pool: error: --metrics-port needs prometheus_client: "
        "pip install 'dbapi-pool[prometheus]'\n"
    )


def test_metrics_port_in_use_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main(["bench", *QUICK, "--metrics-port", str(port)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"dbapi-pool: error: cannot serve metrics on 127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("bad", ["0", "70000", "-1", "http"])
def test_a_bad_metrics_port_exits_2(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    status = main(["bench", *QUICK, "--metrics-port", bad])
    err = capsys.readouterr().err
    assert status == 2 and "--metrics-port" in err and len(err.splitlines()) == 1


def test_a_run_with_metrics_frees_the_port_at_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["bench", *QUICK, "--metrics-port", str(port)]) == 0
    capsys.readouterr()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
