"""Helpers of the metrics tests: free loopback ports, scraping and parsing ``/metrics``."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
#: Generous: these machines are shared and noisy.
TIMEOUT = 60.0

T = TypeVar("T")

#: A scrape: {(sample name, sorted label pairs): value}.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    """Return a loopback TCP port nobody listens on (bound once by the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def poll(what: str, attempt: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """Call ``attempt`` until it returns something other than None (errors count as None);
    fail naming ``what`` and the last error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = attempt()
        except Exception as exc:
            result, last = None, exc
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last!r})")
        time.sleep(0.05)


def terminate(process: subprocess.Popen[Any]) -> None:
    """Stop a server the test started: SIGTERM, then SIGKILL after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
