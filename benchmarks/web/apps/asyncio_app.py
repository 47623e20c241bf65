"""A Starlette application for uvicorn (1 worker), one pool opened in the lifespan.

``BENCH_VARIANT`` picks the pool (``POOL_SIZE`` connections, opened full, a
``CHECKOUT_TIMEOUT`` wait at most, answering 503 when it runs out)::

    dbapi_pool    dbapi_pool.AsyncConnectionPool over psycopg2 (driver calls offloaded)
    psycopg_pool  psycopg_pool.AsyncConnectionPool over psycopg 3's async connections
    asyncpg       asyncpg.create_pool

Routes: ``/health`` (no database) and ``/item/{id}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from benchmarks.web.apps.common import (
    APP_NAME,
    CHECKOUT_TIMEOUT,
    DSN,
    ITEM_SQL,
    ITEM_SQL_DOLLAR,
    POOL_SIZE,
    VARIANT,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

Fetch = Callable[[int], Awaitable[Any]]


class Busy(Exception):
    """No connection came within the checkout timeout."""


@asynccontextmanager
async def _dbapi_pool() -> AsyncIterator[Fetch]:
    import psycopg2

    from dbapi_pool import AsyncConnectionPool, PoolTimeout

    pool = AsyncConnectionPool(
        psycopg2,
        DSN,
        application_name=APP_NAME,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        timeout=CHECKOUT_TIMEOUT,
    )

    async def fetch(item_id: int) -> Any:
        try:
            return await pool.fetchone(ITEM_SQL, (item_id,))
        except PoolTimeout as error:
            raise Busy from error

    async with pool:
        yield fetch


@asynccontextmanager
async def _psycopg_pool() -> AsyncIterator[Fetch]:
    import psycopg_pool

    pool = psycopg_pool.AsyncConnectionPool(
        f"{DSN} application_name={APP_NAME}",
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        timeout=CHECKOUT_TIMEOUT,
        open=False,
    )

    async def fetch(item_id: int) -> Any:
        try:
            async with pool.connection() as conn:
                cursor = await conn.execute(ITEM_SQL, (item_id,))
                return await cursor.fetchone()
        except psycopg_pool.PoolTimeout as error:
            raise Busy from error

    await pool.open(wait=True)
    try:
        yield fetch
    finally:
        await pool.close()


@asynccontextmanager
async def _asyncpg() -> AsyncIterator[Fetch]:
    import asyncpg

    parts = dict(item.split("=", 1) for item in DSN.split())
    pool = await asyncpg.create_pool(
        host=parts.get("host"),
        port=int(parts.get("port", "5432")),
        user=parts.get("user"),
        database=parts.get("dbname"),
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        server_settings={"application_name": APP_NAME},
    )

    async def fetch(item_id: int) -> Any:
        try:
            conn = await pool.acquire(timeout=CHECKOUT_TIMEOUT)
        except asyncio.TimeoutError as error:
            raise Busy from error
        try:
            return await conn.fetchrow(ITEM_SQL_DOLLAR, item_id)
        finally:
            await pool.release(conn)

    try:
        yield fetch
    finally:
        await pool.close()


POOLS = {"dbapi_pool": _dbapi_pool, "psycopg_pool": _psycopg_pool, "asyncpg": _asyncpg}


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    """Open the variant's pool for the app's life, then close it."""
    async with POOLS[VARIANT]() as fetch:
        yield {"fetch": fetch}


async def health(request: Request) -> JSONResponse:
    """Answer without touching the database."""
    return JSONResponse({"status": "ok"})


async def item(request: Request) -> JSONResponse:
    """Return one item, 404 if there is none, 503 if no connection came in time."""
    try:
        row = await request.state.fetch(request.path_params["item_id"])
    except Busy:
        return JSONResponse({"error": "pool timeout"}, status_code=503)
    if row is None:
        return JSONResponse({"error": "no such item"}, status_code=404)
    return JSONResponse({"id": row[0], "name": row[1]})


app = Starlette(
    routes=[Route("/health", health), Route("/item/{item_id:int}", item)],
    lifespan=lifespan,
)
