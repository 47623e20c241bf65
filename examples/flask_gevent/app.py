"""A Flask application on PostgreSQL, served by gunicorn's gevent workers.

Run it from the repository's root (``examples/README.md`` has the table to create)::

    gunicorn -c examples/flask_gevent/gunicorn.conf.py examples.flask_gevent.app:app

Each worker process has one :class:`~dbapi_pool.ConnectionPool` of ``max_size`` 8,
created after the fork (a pool's connections must not be shared by two processes):
``gunicorn.conf.py`` opens it in each worker once gevent has patched the worker, and
closes it when the worker exits; without that file, the first request opens it.
psycogreen's wait callback lets psycopg2 yield to gevent's hub while the server works,
so one worker serves many requests at once with 8 connections.

Routes: ``/health`` (no database), ``/item/<id>`` (one indexed SELECT), ``/stats`` (the
worker's ``pool.stats()`` as JSON), and ``/metrics`` when prometheus_client is installed
and ``PROMETHEUS_MULTIPROC_DIR`` is set (every worker's pool, in multiprocess mode).

Settings, from the environment: ``EXAMPLE_DSN`` (a libpq connection string, by default
the local test database) and ``EXAMPLE_APP_NAME`` (the sessions' ``application_name`` is
it followed by the worker's pid, so ``pg_stat_activity`` shows each worker's sessions).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import psycopg2
from flask import Flask, Response, request

import dbapi_pool
from dbapi_pool import ConnectionPool, PoolTimeout

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        generate_latest,
        multiprocess,
    )

    from dbapi_pool.metrics.prometheus import MultiProcessPoolMetrics
except ImportError:  # optional: no /metrics without prometheus_client
    MultiProcessPoolMetrics = None  # type: ignore[assignment,misc]

DSN = os.environ.get("EXAMPLE_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
APP_NAME = os.environ.get("EXAMPLE_APP_NAME", "dbapi-pool-flask")
MAX_SIZE = 8
#: One indexed read plus 2 ms of server time, as a real query would take.
ITEM_SQL = "SELECT id, name, pg_sleep(0.002) FROM items WHERE id = %s"

_lock = threading.Lock()
_pool: ConnectionPool | None = None
_metrics: Any = None  # a MultiProcessPoolMetrics when /metrics is served

app = Flask(__name__)


def _green_psycopg2() -> None:
    """Let psycopg2 wait for the server through gevent's hub when gevent patched us."""
    try:
        from gevent import monkey
        from psycogreen.gevent import patch_psycopg
    except ImportError:  # the pool then runs psycopg2 in OS threads (and says so once)
        return
    if monkey.is_module_patched("socket"):
        patch_psycopg()


def open_pool() -> ConnectionPool:
    """Return this process's pool, creating it (and its metrics) on the first call."""
    global _pool, _metrics
    with _lock:
        if _pool is None:
            _green_psycopg2()
            _pool = ConnectionPool(
                psycopg2,
                DSN,
                application_name=f"{APP_NAME}-{os.getpid()}",
                name="web",
                max_size=MAX_SIZE,
            )
            if MultiProcessPoolMetrics is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                _metrics = MultiProcessPoolMetrics(_pool)
                _metrics.start(interval=5.0)
        return _pool


def close_pool() -> None:
    """Close this process's pool (at worker exit); the final counts go to the metrics."""
    global _pool, _metrics
    with _lock:
        pool, _pool = _pool, None
        metrics, _metrics = _metrics, None
    if pool is not None:
        pool.close()
    if metrics is not None:
        metrics.update()  # the closed pool's gauges drop to 0; its counters stay
        metrics.stop()


@app.get("/health")
def health() -> dict[str, str]:
    """Answer without touching the database."""
    return {"status": "ok"}


@app.get("/item/<int:item_id>")
def item(item_id: int) -> Any:
    """Return one item, or 404; the checkout is tagged with the path (see PoolTimeout)."""
    with dbapi_pool.tagged(request.path):
        row = open_pool().fetchone(ITEM_SQL, (item_id,))
    if row is None:
        return {"error": f"no item {item_id}"}, 404
    return {"id": row[0], "name": row[1]}


@app.get("/stats")
def stats() -> dict[str, Any]:
    """Return this worker's pool statistics."""
    return open_pool().stats().as_dict()


@app.get("/metrics")
def metrics() -> Any:
    """Serve every worker's pool metrics (prometheus_client's multiprocess mode)."""
    open_pool()
    if _metrics is None:
        return {"error": "needs prometheus_client and PROMETHEUS_MULTIPROC_DIR"}, 404
    _metrics.update()  # this worker's values are fresh; the others' at most 5 s old
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@app.errorhandler(PoolTimeout)
def busy(exc: PoolTimeout) -> Any:
    """Answer 503 when no connection came in time; the message names the holders' tags."""
    return {"error": str(exc)}, 503
