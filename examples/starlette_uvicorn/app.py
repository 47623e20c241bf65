"""A Starlette application on PostgreSQL, served by uvicorn, with an AsyncConnectionPool.

Run it from the repository's root (``examples/README.md`` has the table to create)::

    uvicorn examples.starlette_uvicorn.app:app --host 127.0.0.1 --port 8000

The pool (psycopg2, ``max_size`` 8) is made and opened by
:func:`~dbapi_pool.integrations.asgi.pool_lifespan`, before the first request, and closed
at shutdown (a metrics registry is added to its lifespan state). psycopg2 blocks, so the
pool runs each driver call on a thread it owns (one per connection): the event loop keeps
serving while queries run.

Routes: ``/health`` (no database), ``/item/{id}`` (one indexed SELECT), ``/stats`` (the
pool's statistics as JSON), and ``/metrics`` when prometheus_client is installed.

Settings, from the environment: ``EXAMPLE_DSN`` (a libpq connection string, by default
the local test database) and ``EXAMPLE_APP_NAME`` (the sessions' ``application_name`` is
it followed by the process's pid).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import dbapi_pool
from dbapi_pool import AsyncConnectionPool, PoolTimeout
from dbapi_pool.integrations.asgi import pool_lifespan

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from dbapi_pool.metrics.prometheus import PoolCollector
except ImportError:  # optional: no /metrics without prometheus_client
    PoolCollector = None  # type: ignore[assignment,misc]

DSN = os.environ.get("EXAMPLE_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
APP_NAME = os.environ.get("EXAMPLE_APP_NAME", "dbapi-pool-starlette")
MAX_SIZE = 8
#: One indexed read plus 2 ms of server time, as a real query would take.
ITEM_SQL = "SELECT id, name, pg_sleep(0.002) FROM items WHERE id = %s"


def make_pool() -> AsyncConnectionPool:
    """Make the pool: ``pool_lifespan`` calls this at startup, in the server's loop."""
    return AsyncConnectionPool(
        psycopg2,
        DSN,
        application_name=f"{APP_NAME}-{os.getpid()}",
        name="web",
        max_size=MAX_SIZE,
    )


pool_life = pool_lifespan(make_pool)  # opens the pool at startup, closes it at shutdown


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """Add a metrics registry reading the pool to ``pool_lifespan``'s state."""
    async with pool_life(app) as state:
        registry = None
        if PoolCollector is not None:
            registry = CollectorRegistry()
            registry.register(PoolCollector(state["pool"]))
        yield {**state, "registry": registry}  # request.state.pool, .registry


async def health(request: Request) -> JSONResponse:
    """Answer without touching the database."""
    return JSONResponse({"status": "ok"})


async def item(request: Request) -> JSONResponse:
    """Return one item, or 404; the checkout is tagged with the path (see PoolTimeout)."""
    item_id = request.path_params["item_id"]
    with dbapi_pool.tagged(request.url.path):
        row = await request.state.pool.fetchone(ITEM_SQL, (item_id,))
    if row is None:
        return JSONResponse({"error": f"no item {item_id}"}, status_code=404)
    return JSONResponse({"id": row[0], "name": row[1]})


async def stats(request: Request) -> JSONResponse:
    """Return the pool's statistics."""
    return JSONResponse(request.state.pool.stats().as_dict())


async def metrics(request: Request) -> Response:
    """Serve the pool's metrics in Prometheus' text format."""
    registry = request.state.registry
    if registry is None:
        return JSONResponse({"error": "needs prometheus_client"}, status_code=404)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def busy(request: Request, exc: Exception) -> JSONResponse:
    """Answer 503 when no connection came in time; the message names the holders' tags."""
    return JSONResponse({"error": str(exc)}, status_code=503)


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/item/{item_id:int}", item),
        Route("/stats", stats),
        Route("/metrics", metrics),
    ],
    exception_handlers={PoolTimeout: busy},
    lifespan=lifespan,
)
