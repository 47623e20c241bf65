"""A plain WSGI application for gunicorn's gevent workers, one pool per worker process.

``BENCH_VARIANT`` picks the pool (all of psycopg2, ``POOL_SIZE`` connections, a
``CHECKOUT_TIMEOUT`` wait at most, answering 503 when it runs out)::

    dbapi_pool        dbapi_pool.ConnectionPool, pool.fetchone()
    dbapi_pool_sa     SQLAlchemy engine with poolclass=dbapi_pool.sqlalchemy.Pool, raw connection
    sa_queuepool      SQLAlchemy engine (QueuePool, max_overflow=0), raw connection
    psycopg2_threaded psycopg2.pool.ThreadedConnectionPool behind gevent BoundedSemaphore

The module is imported in the worker after gevent patched it, so the pool is created then
(after the fork) and psycogreen makes psycopg2 wait for the server through gevent's hub.
Routes: ``/health`` (no database) and ``/item/<id>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2
import psycopg2.pool
from benchmarks.web.apps.common import (
    APP_NAME,
    CHECKOUT_TIMEOUT,
    DBAPI_POOL_SETTINGS,
    DSN,
    ITEM_SQL,
    POOL_SIZE,
    VARIANT,
    sqlalchemy_url,
)
from gevent import monkey

if monkey.is_module_patched("socket"):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

Row = Any
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Busy(Exception):
    """No connection came within the checkout timeout."""


def _dbapi_pool() -> Callable[[int], Row]:
    """Return a fetch function over dbapi-pool's ConnectionPool."""
    from dbapi_pool import ConnectionPool, PoolTimeout

    pool = ConnectionPool(
        psycopg2,
        DSN,
        application_name=APP_NAME,
        min_size=POOL_SIZE,
        max_size=POOL_SIZE,
        timeout=CHECKOUT_TIMEOUT,
        **DBAPI_POOL_SETTINGS,
    )

    def fetch(item_id: int) -> Row:
        try:
            return pool.fetchone(ITEM_SQL, (item_id,))
        except PoolTimeout as error:
            raise Busy from error

    return fetch


def _sqlalchemy(poolclass: Any) -> Callable[[int], Row]:
    """Return a fetch function over a SQLAlchemy engine's raw DBAPI connections."""
    import sqlalchemy
    from sqlalchemy import exc

    kwargs: dict[str, Any] = {} if poolclass is None else {"poolclass": poolclass}
    engine = sqlalchemy.create_engine(
        sqlalchemy_url(),
        pool_size=POOL_SIZE,
        max_overflow=0,
        pool_timeout=CHECKOUT_TIMEOUT,
        connect_args={"application_name": APP_NAME},
        **kwargs,
    )

    def fetch(item_id: int) -> Row:
        try:
            conn = engine.raw_connection()
        except exc.TimeoutError as error:
            raise Busy from error
        try:
            cursor = conn.cursor()
            cursor.execute(ITEM_SQL, (item_id,))
            row = cursor.fetchone()
            cursor.close()
            conn.commit()
            return row
        finally:
            conn.close()  # back to the pool (which rolls back: nothing left to undo)

    return fetch


def _psycopg2_threaded() -> Callable[[int], Row]:
    """Return a fetch function over ThreadedConnectionPool, bounded by a gevent semaphore."""
    from gevent.lock import BoundedSemaphore

    pool = psycopg2.pool.ThreadedConnectionPool(
        POOL_SIZE, POOL_SIZE, DSN, application_name=APP_NAME
    )
    # The pool raises PoolError when all are out; the semaphore makes callers wait instead.
    slots = BoundedSemaphore(POOL_SIZE)

    def fetch(item_id: int) -> Row:
        if not slots.acquire(timeout=CHECKOUT_TIMEOUT):
            raise Busy
        try:
            conn = pool.getconn()
            try:
                with conn.cursor() as cursor:
                    cursor.execute(ITEM_SQL, (item_id,))
                    row = cursor.fetchone()
                conn.commit()
                return row
            finally:
                pool.putconn(conn)
        finally:
            slots.release()

    return fetch


def _make_fetch() -> Callable[[int], Row]:
    """Return the fetch function of ``VARIANT``."""
    if VARIANT == "dbapi_pool":
        return _dbapi_pool()
    if VARIANT == "dbapi_pool_sa":
        from dbapi_pool.sqlalchemy import Pool

        return _sqlalchemy(Pool)
    if VARIANT == "sa_queuepool":
        return _sqlalchemy(None)
    if VARIANT == "psycopg2_threaded":
        return _psycopg2_threaded()
    raise ValueError(f"unknown BENCH_VARIANT {VARIANT!r}")


fetch = _make_fetch()


def _answer(start_response: StartResponse, status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Serve ``/health`` and ``/item/<id>``."""
    path = environ.get("PATH_INFO", "")
    if path == "/health":
        return _answer(start_response, "200 OK", {"status": "ok"})
    if not path.startswith("/item/") or not path[6:].isdigit():
        return _answer(start_response, "404 Not Found", {"error": "not found"})
    try:
        row = fetch(int(path[6:]))
    except Busy:
        return _answer(start_response, "503 Service Unavailable", {"error": "pool timeout"})
    if row is None:
        return _answer(start_response, "404 Not Found", {"error": "no such item"})
    return _answer(start_response, "200 OK", {"id": row[0], "name": row[1]})
