"""docs/grafana-dashboard.json: valid, and every query names only series the exporter
really exports (checked against a real scrape), so the dashboard cannot drift."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from dbapi_pool import ConnectionPool
from dbapi_pool.metrics.prometheus import PoolCollector

from .support import DASHBOARD, parse

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"and", "or", "unless"}
FUNCTIONS = {"histogram_quantile", "rate", "increase", "irate", "sum", "max", "min", "avg"}
FUNCTIONS |= {"label_values", "clamp_min", "topk", "count"}


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Return every PromQL expression: the panels' targets and the variables' queries."""
    found = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    return found


def names_in(expr: str) -> tuple[set[str], set[str], set[str]]:
    """Split an expression into (metric names, function names, label names) it uses."""
    labels = set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)\s*\"", expr))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in grouping.split(",") if label.strip()}
    bare = re.sub(r'"[^"]*"', "", expr)  # label values ($pool...)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)  # matchers, ranges
    bare = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", bare)  # groupings
    if bare.startswith("label_values("):  # Grafana's: label_values(metric, label)
        metric, label = (part.strip() for part in bare[len("label_values(") : -1].split(","))
        return {metric}, {"label_values"}, {label}
    functions = set(re.findall(r"([a-zA-Z_]\w*)\s*\(", bare))
    words = set(re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)", bare))
    return words - functions - KEYWORDS, functions, labels


@pytest.fixture(scope="module")
def exported() -> Iterator[tuple[set[str], set[str]]]:
    """The sample names and label names of a real scrape of PoolCollector."""
    pool = ConnectionPool(sqlite3, database=":memory:", name="dashboard")
    try:
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")
        registry = CollectorRegistry()
        collector = PoolCollector(pool)
        registry.register(collector)
        samples = parse(generate_latest(registry).decode())
        collector.close()
    finally:
        pool.close()
    yield {name for name, _ in samples}, {label for _, labels in samples for label, _ in labels}


def test_the_dashboard_is_a_grafana_dashboard_with_a_pool_variable() -> None:
    dashboard = load()
    assert 36 <= dashboard["schemaVersion"] <= 40
    assert dashboard["title"] and dashboard["uid"]
    pool = next(v for v in dashboard["templating"]["list"] if v["name"] == "pool")
    assert pool["query"]["query"] == "label_values(dbapi_pool_max_connections, pool)"
    assert pool["definition"] == pool["query"]["query"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 8
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"] and panel["gridPos"]["w"] > 0
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert 'pool=~"$pool"' in target["expr"], target["expr"]


def test_every_query_names_only_exported_metrics_and_labels(
    exported: tuple[set[str], set[str]],
) -> None:
    metrics, labels = exported
    used: set[str] = set()
    for expr in expressions(load()):
        names, functions, label_names = names_in(expr)
        assert names, f"no metric in {expr}"
        assert names <= metrics, f"{expr}: not exported: {sorted(names - metrics)}"
        assert functions <= FUNCTIONS, f"{expr}: unknown functions {sorted(functions - FUNCTIONS)}"
        assert label_names <= labels, f"{expr}: unknown labels {sorted(label_names - labels)}"
        used |= names
    # What the issue asks the dashboard to show.
    for needed in (
        "dbapi_pool_connections",
        "dbapi_pool_max_connections",
        "dbapi_pool_waiting",
        "dbapi_pool_wait_seconds_bucket",
        "dbapi_pool_use_seconds_bucket",
        "dbapi_pool_create_seconds_bucket",
        "dbapi_pool_timeouts_total",
        "dbapi_pool_connect_failures_total",
        "dbapi_pool_closes_total",
    ):
        assert needed in used


def test_quantiles_are_taken_over_bucket_rates_grouped_by_le() -> None:
    quantiles = [e for e in expressions(load()) if e.startswith("histogram_quantile")]
    assert len(quantiles) >= 5
    for expr in quantiles:
        assert re.search(r"by \([^)]*\ble\b[^)]*\) \(rate\(dbapi_pool_\w+_seconds_bucket\{", expr)
        assert "[5m]" in expr


def test_the_checker_catches_a_misspelt_metric(exported: tuple[set[str], set[str]]) -> None:
    names, _, labels = names_in(
        'sum by (pool, lee) (rate(dbapi_pool_wait_second_bucket{pool=~"$pool"}[5m]))'
    )
    assert names == {"dbapi_pool_wait_second_bucket"} and not names <= exported[0]
    assert not labels <= exported[1]
