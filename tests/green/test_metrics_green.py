"""Observability under gevent and eventlet (patched and not) with real drivers: both
exporters, listeners, holders and the PoolTimeout message (metrics_scenarios.py, one
subprocess per mode: monkey-patching cannot be undone)."""

from __future__ import annotations

from typing import Any

import pytest
from scenario_runner import MODES, scenario_lines

QUERIES = 20


def results_of(mode: str) -> list[dict[str, Any]]:
    return scenario_lines("metrics_scenarios.py", mode)


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("mode", MODES)
def test_exporters_listeners_and_holders_of_green_pools(mode: str) -> None:
    results = results_of(mode)
    assert [r["driver"] for r in results] == ["psycopg2", "pymysql"]
    for result in results:
        case = f"{mode} {result['driver']} offloaded={result['offloaded']}"
        events = result["events"]
        assert events["checkout"] == QUERIES + 2, case
        assert events["checkin"] == QUERIES + 2, case  # the holders put theirs back last
        # The queries queued behind the two connections, then the one that timed out.
        assert events["wait"] == result["stats_waits"] >= 2 and events["timeout"] == 1, case
        assert 1 <= events["connect"] <= 2, case
        values = result["otel"]
        assert values["db.client.connection.count.used"] == 2, case
        assert values["db.client.connection.count.idle"] == 0, case
        assert values["db.client.connection.max"] == 2, case
        assert values["db.client.connection.timeouts"] == 1, case
        assert values["db.client.connection.use_time"] == QUERIES, case
        assert values["db.client.connection.wait_time"] == QUERIES + 2, case
        assert values["db.client.connection.create_time"] == events["connect"], case
        assert result["stats_wait_count"] == QUERIES + 2, case
        assert result["prometheus_checkouts"] and result["prometheus_used"], case
        assert sorted(tag for tag, _ in result["holders"]) == ["holder-0", "holder-1"], case
        assert all(who.startswith("greenlet") for _, who in result["holders"]), case
        assert result["timeout_names_holders"], case
