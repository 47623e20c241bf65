"""The lifecycle hooks under gevent and eventlet (patched and not) with real drivers.

Each mode runs in a subprocess (hooks_scenarios.py: monkey-patching cannot be undone), for
psycopg2 against PostgreSQL and PyMySQL and MySQLdb against MariaDB, and under eventlet
also through the drop-in ``eventlet_db_pool``. ``configure`` and ``check`` run where the
driver's calls run: in an OS thread for an offloaded driver, in the green thread otherwise.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_runner import MODES, scenario_lines

DRIVERS = ["psycopg2", "pymysql", "MySQLdb"]


def results_of(mode: str) -> list[dict[str, Any]]:
    return scenario_lines("hooks_scenarios.py", mode)


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("mode", MODES)
def test_hooks_with_real_drivers_under(mode: str) -> None:
    results = results_of(mode)
    expected = DRIVERS + ([f"compat {d}" for d in DRIVERS] if mode.startswith("eventlet") else [])
    assert [r["driver"] for r in results] == expected
    offloaded = set()
    for result in results:
        case = f"{mode} {result['driver']} offloaded={result['offloaded']}"
        offloaded.add(result["offloaded"])
        # configure: every lent connection shows the session state it set (committed).
        assert result["tags"] == ["hooked"], case
        assert result["configured"] == 2, case
        # check: run on reuse; a rejected connection is replaced within the same get().
        assert result["checked"] is True, case
        assert result["replaced"] is True, case
        assert (result["failed_check"], result["rejected_left"]) == (1, 0), case
        # a failing configure is a failed connect, and its session is closed.
        assert result["failed_get"] == "configure refused", case
        assert (result["connect_failures"], result["failed_left"]) == (1, 0), case
    if mode.endswith("-patched"):  # both places a hook can run were covered
        assert offloaded == {True, False}
