"""A Flask application on PostgreSQL, served by gunicorn's gevent workers.

Run it from the repository's root (``examples/README.md`` has the table to create)::

    gunicorn -c examples/flask_gevent/gunicorn.conf.py examples.flask_gevent.app:app

Each worker process has one :class:`~dbapi_pool.ConnectionPool` of ``max_size`` 8,
held by :class:`~dbapi_pool.integrations.flask.FlaskPool`: it is made in each process
on first use, after the fork (a pool's connections must not be shared by two processes),
closed at the process's exit, and tags every checkout with the request's route.
``gunicorn.conf.py`` makes it in each worker once gevent has patched the worker, and
closes it (with the metrics' final counts) when the worker exits; without that file,
the first request makes it.
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
from typing import Any

import psycopg2
from flask import Flask, Response

from dbapi_pool import ConnectionPool, PoolTimeout
from dbapi_pool.integrations.flask import FlaskPool

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


def make_pool() -> ConnectionPool:
    """Make this process's pool (and its metrics): FlaskPool calls it on first use."""
    global _metrics
    _green_psycopg2()
    pool = ConnectionPool(
        psycopg2,
        DSN,
        application_name=f"{APP_NAME}-{os.getpid()}",
        name="web",
        max_size=MAX_SIZE,
    )
    if MultiProcessPoolMetrics is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _metrics = MultiProcessPoolMetrics(pool)
        _metrics.start(interval=5.0)
    return pool


db = FlaskPool(app, factory=make_pool)


def close_pool() -> None:
    """Close this process's pool (at worker exit); the final counts go to the metrics."""
    global _metrics
    db.close()
    metrics, _metrics = _metrics, None
    if metrics is not None:
        metrics.update()  # the closed pool's gauges drop to 0; its counters stay
        metrics.stop()


@app.get("/health")
def health() -> dict[str, str]:
    """Answer without touching the database."""
    return {"status": "ok"}


@app.get("/item/<int:item_id>")
def item(item_id: int) -> Any:
    """Return one item, or 404; FlaskPool tags the checkout with the route (see PoolTimeout)."""
    row = db.fetchone(ITEM_SQL, (item_id,))
    if row is None:
        return {"error": f"no item {item_id}"}, 404
    return {"id": row[0], "name": row[1]}


@app.get("/stats")
def stats() -> dict[str, Any]:
    """Return this worker's pool statistics."""
    return db.stats().as_dict()


@app.get("/metrics")
def metrics() -> Any:
    """Serve every worker's pool metrics (prometheus_client's multiprocess mode)."""
    db.pool  # noqa: B018 (made on first use, with the metrics)
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
