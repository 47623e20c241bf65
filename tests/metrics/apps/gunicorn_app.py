"""A tiny WSGI app for the gunicorn test: ``/`` checks out a connection of a pool on the
test PostgreSQL and answers with the worker's pid; ``/metrics`` serves every worker's
metrics through ``MultiProcessCollector``, as the exporter's documentation shows."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from dbapi_pool import ConnectionPool
from dbapi_pool.metrics.prometheus import MultiProcessPoolMetrics

MAX_SIZE = 3

# Imported by each worker after the fork (no preload_app): one pool per worker.
pool = ConnectionPool(
    psycopg2,
    host="127.0.0.1",
    port=5432,
    user="postgres",
    dbname="test",
    name="web",
    max_size=MAX_SIZE,
)
pool_metrics = MultiProcessPoolMetrics(pool)
pool_metrics.start(interval=30.0)  # writes now; requests below keep the values fresh


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Serve ``/metrics`` or one checkout."""
    if environ["PATH_INFO"] == "/metrics":
        pool_metrics.update()
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]
    with pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
    pool_metrics.update()  # before answering: the caller may scrape at once
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
