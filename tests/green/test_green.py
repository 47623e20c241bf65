"""Green threads: the contract suite and real drivers under gevent and eventlet.

Monkey-patching cannot be undone, so every green run is a subprocess: the contract suite
(tests/contract, on the fake driver) under each flavour, patched and not; and the real
drivers of the cooperation table against PostgreSQL and MariaDB (green_scenarios.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
MODES = ["gevent-patched", "eventlet-patched", "gevent", "eventlet"]
#: 16 green threads x 300 ms through 16 connections: serial would take 4.8 s.
SERIAL = 16 * 0.3
#: Generous bounds (shared, noisy machines: with 50 ms queries a loaded machine took 0.3-0.7 s
#: against a 0.27 s bound); the benchmarks report the real figures.
WALL_BOUND = SERIAL / 3
LAG_BOUND = 0.25  # a hub blocked by a driver shows 300 ms per query, 4.8 s in all


def run(script: str, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE.parent.parent,
    )


@pytest.mark.parametrize("mode", MODES)
def test_contract_suite_passes_under(mode: str) -> None:
    done = run("run_contract.py", mode)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert " passed" in done.stdout


_RESULTS: dict[str, list[dict[str, Any]]] = {}


def results_of(mode: str) -> list[dict[str, Any]]:
    """Run the real-driver scenarios under ``mode`` once per session; return their lines."""
    if mode not in _RESULTS:
        done = run("green_scenarios.py", mode)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
        _RESULTS[mode] = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return _RESULTS[mode]


@pytest.fixture(params=MODES)
def scenario_results(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return results_of(request.param)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_every_driver_cooperates_with_the_hub(scenario_results: list[dict[str, Any]]) -> None:
    drivers = {r["driver"] for r in scenario_results}
    assert {"psycopg2", "psycopg", "pg8000", "MySQLdb", "pymysql"} <= drivers
    for result in scenario_results:
        case = f"{result['mode']} {result['driver']} offload={result['offload']}"
        assert result["idiom"], f"{case}: the classic idiom or commit/rollback failed"
        assert result["wall"] < WALL_BOUND, f"{case}: {result['wall']:.3f} s, hub blocked?"
        assert result["lag"] < LAG_BOUND, f"{case}: ticker starved {result['lag'] * 1000:.0f} ms"
        assert result["in_use"] == 0 and 0 < result["size"] <= 16, case


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("mode", "driver", "offloaded"),
    [
        # The cooperation table: what "auto" decides.
        ("gevent-patched", "psycopg2", True),  # no wait callback: libpq blocks the hub
        ("gevent-patched", "psycopg2+psycogreen", False),
        ("gevent-patched", "psycopg", False),
        ("gevent-patched", "pg8000", False),
        ("gevent-patched", "pymysql", False),
        ("gevent-patched", "MySQLdb", True),
        ("eventlet-patched", "psycopg2", False),  # monkey_patch() installs a wait callback
        ("eventlet-patched", "psycopg", True),  # psycopg does not support eventlet
        ("eventlet-patched", "MySQLdb", True),
        ("gevent", "pymysql", True),  # unpatched sockets block the hub
        ("eventlet", "pg8000", True),
    ],
)
def test_auto_offload_follows_the_cooperation_table(
    mode: str, driver: str, offloaded: bool
) -> None:
    results = results_of(mode)
    (auto,) = [r for r in results if r["driver"] == driver and r["offload"] == "auto"]
    assert auto["offloaded"] is offloaded


def test_core_imports_and_runs_without_gevent_or_eventlet() -> None:
    code = (
        "import sys, sqlite3\n"
        "sys.modules['gevent'] = None; sys.modules['eventlet'] = None\n"
        "import dbapi_pool\n"
        "with dbapi_pool.ConnectionPool(sqlite3, database=':memory:') as pool:\n"
        "    pool.put(pool.get())\n"
        "try:\n"
        "    dbapi_pool.ConnectionPool(sqlite3, database=':memory:', backend='gevent')\n"
        "except ImportError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout and "pip install 'dbapi-pool[gevent]'" in done.stdout


def test_offload_needs_a_green_backend() -> None:
    import sqlite3

    from dbapi_pool import ConnectionPool

    with pytest.raises(ValueError, match="offload=True needs a green backend"):
        ConnectionPool(sqlite3, database=":memory:", backend="threads", offload=True)
    with pytest.raises(ValueError, match="backend must be"):
        ConnectionPool(sqlite3, database=":memory:", backend="trio")


def test_eventlet_offload_threads_run_calls_together_report_errors_and_stop() -> None:
    done = run("offload_lifecycle.py")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["together"] < 8 * 0.05 / 2  # serial would take 0.4 s
    assert seen["running"] == 8 + 2  # max_size + 2, started with the first call
    assert seen["error"] == "OperationalError"  # raised in the green thread that asked
    assert seen["left"] == []  # stopped once the pool was gone


def run_strict(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with every warning an error (eventlet's own deprecation aside)."""
    flags = ["-W", "error", "-W", "ignore::DeprecationWarning"]
    return subprocess.run(
        [sys.executable, *flags, str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=HERE.parent.parent,
    )


def test_eventlet_offloader_close_never_writes_to_a_closed_pipe() -> None:
    # Issue 11: close() wrote its wake-up byte after the last worker had closed the write
    # end (EBADF, or a byte into the file that reused the number). Forced here: the
    # closing thread's write is held until the write end is closed.
    done = run_strict("offload_shutdown.py", "held")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {
        "error": None,
        "late_writes": 0,
        "write_end_closed": True,
        "read_end_closed": True,
    }


def test_eventlet_pools_dropped_in_a_loop_shut_their_offloader_down_cleanly() -> None:
    done = run_strict("offload_shutdown.py", "stress", "300")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"ignored": [], "ignored_count": 0}


def test_eventlet_waiter_signal_wakes_times_out_and_survives_a_killed_waiter() -> None:
    done = run("signal_semantics.py")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["taken_at_start"] is False
    assert seen["released_before"] is True
    assert seen["taken_again"] is False
    assert seen["timed_out"] is False
    assert 0.04 <= seen["waited"] < 2.0
    assert seen["usable_after_timeout"] is True
    assert seen["woken"] is True
    assert seen["timers_pending"] == 0  # the 5 s timer was cancelled, not left behind
    assert seen["slept_after_timeout"] >= 0.19  # not cut short by a stale wake-up
    assert seen["killed"] == ["GreenletExit"]
    assert seen["still_up"] is True


@pytest.mark.parametrize("flavour", ["gevent", "eventlet"])
def test_a_finalizer_that_switches_under_the_pool_lock_does_not_freeze_the_hub(
    flavour: str,
) -> None:
    # A garbage collection may run a finalizer doing green I/O while a green thread holds
    # the pool's lock; with a lock of the OS-thread kind the next green thread to take it
    # would block the hub for good (the child then dies on its 20 s watchdog).
    done = run("finalizer_switch.py", flavour)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"finalized": ["switched and came back"], "served": True}
