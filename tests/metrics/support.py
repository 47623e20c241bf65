"""Helpers of the metrics tests: free loopback ports, scraping and parsing ``/metrics``."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from processes import TIMEOUT, free_port, poll, terminate

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}

#: A scrape: {(sample name, sorted label pairs): value}.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Parse the Prometheus text format into samples keyed by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(url: str, timeout: float = 10.0) -> str:
    """Return the body of a GET on ``url``."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body.decode()


def scrape(url: str) -> Samples:
    """Scrape a ``/metrics`` URL."""
    return parse(get(url))


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return the one sample of ``name`` with exactly these labels."""
    return samples[(name, tuple(sorted(labels.items())))]


__all__ = [
    "DASHBOARD",
    "PG",
    "TIMEOUT",
    "Samples",
    "free_port",
    "get",
    "parse",
    "poll",
    "scrape",
    "terminate",
    "value",
]
