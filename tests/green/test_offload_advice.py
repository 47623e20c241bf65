"""A green pool that offloads psycopg2 only because psycogreen's wait callback is missing
says so once, naming the fix; a patched driver or ``offload=True`` gets no warning (issue
15). Each case runs in a subprocess (offload_advice.py): monkey-patching cannot be undone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent

pytestmark = pytest.mark.postgres


def opened(mode: str, case: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(HERE / "offload_advice.py"), mode, case],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE.parent.parent,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    [line] = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result: dict[str, Any] = json.loads(line)
    assert result["one"] == 1
    return result


def test_unpatched_psycopg2_under_gevent_warns_once_naming_psycogreen() -> None:
    result = opened("gevent-patched", "plain")
    assert result["offloaded"] is True
    [warning] = result["warnings"]
    assert warning.startswith("pool 'advised': psycopg2's calls run in OS threads")
    assert "from psycogreen.gevent import patch_psycopg; patch_psycopg()" in warning
    assert "after monkey-patching" in warning and "offload=True" in warning


def test_psycopg2_patched_by_psycogreen_runs_in_green_threads_without_warning() -> None:
    result = opened("gevent-patched", "psycogreen")
    assert (result["offloaded"], result["warnings"]) == (False, [])


def test_offload_forced_by_the_user_is_not_warned_about() -> None:
    result = opened("gevent-patched", "forced")
    assert (result["offloaded"], result["warnings"]) == (True, [])


def test_unpatched_psycopg2_on_the_eventlet_backend_names_psycogreen_eventlet() -> None:
    result = opened("eventlet", "plain")
    assert result["offloaded"] is True
    [warning] = result["warnings"]
    assert "from psycogreen.eventlet import patch_psycopg; patch_psycopg()" in warning
    assert "eventlet hub" in warning


def test_psycopg2_patched_for_eventlet_is_not_warned_about() -> None:
    result = opened("eventlet", "psycogreen")
    assert (result["offloaded"], result["warnings"]) == (False, [])
