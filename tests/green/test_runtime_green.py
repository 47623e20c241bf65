"""Runtime control under gevent and eventlet (patched and not) with real drivers.

Each mode runs in a subprocess (runtime_scenarios.py: monkey-patching cannot be undone),
for psycopg2 against PostgreSQL and PyMySQL and MySQLdb against MariaDB, sessions counted
on the server. Offloaded drivers wait for the server in an OS thread; drivers called
directly (PyMySQL on patched sockets, psycopg2 after eventlet's monkey_patch()) wait in
their green thread.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_runner import MODES, scenario_lines


def results_of(mode: str) -> list[dict[str, Any]]:
    return scenario_lines("runtime_scenarios.py", mode)


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("mode", MODES)
def test_runtime_operations_with_real_drivers_under(mode: str) -> None:
    results = results_of(mode)
    assert [r["driver"] for r in results] == ["psycopg2", "pymysql", "MySQLdb"]
    for result in results:
        case = f"{mode} {result['driver']} offloaded={result['offloaded']}"
        # close(), drain() and resize() return once the sessions are gone.
        assert result["close_left"] == 0, case
        assert (result["drain_idle_left"], result["drain_held_alive"]) == (0, 1), case
        assert result["drain_returned_left"] == 0, case
        assert result["resize_closed"] == 2, case
        if result["driver"] == "psycopg2":
            assert result["resize_alive"] == 1, case
        # pause() holds checkouts, resume() serves the one that waited.
        assert result["paused_get"] == "PoolTimeout", case
        assert result["resumed_served"] is True, case
        # open(wait=True), check() and keepalive on sessions the server killed.
        assert result["ready_idle"] == 2 and result["ready_again"] == 2, case
        assert result["check_replaced"] == 1, case
        assert result["keepalive_found"] is True, case
