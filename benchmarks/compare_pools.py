"""The contenders of compare.py: how each pool (and each baseline) is opened for one trial.

An opener takes a Setup (driver, connect keywords, workers, pool size), opens a fresh pool
(opening, filling and closing it are not timed) and hands the runner each worker's checkout
and check-in, each pool used the way its documentation shows: ``pool.get()`` /
``pool.put(conn)`` for dbapi_pool, ``pool.connect()`` / ``conn.close()`` for SQLAlchemy's
QueuePool, ``pool.connection()`` / ``conn.close()`` for DBUtils, ``getconn()`` /
``putconn()`` for psycopg2's and psycopg's pools. Every pool is filled to its size before the
trial and keeps its default reset and checks unless its opener is told otherwise.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from compare_runner import AsyncWorkers, Checkin, Checkout, Workers, perf_counter

if TYPE_CHECKING:
    from compare_rows import AsyncOpener, Opener, Setup

# -- small helpers ----------------------------------------------------------------------------


def close(conn: Any) -> None:
    """Check in by closing (what a pooled connection's close() means for most pools)."""
    conn.close()


def keep(conn: Any) -> None:
    """Check in nothing: the baseline keeps its connection."""


def fill(checkout: Checkout, checkin: Checkin, size: int) -> None:
    """Check out ``size`` connections at once and return them: the pool is then full."""
    conns = [checkout() for _ in range(size)]
    for conn in conns:
        checkin(conn)


def same_ops(workers: int, sql: str, checkout: Checkout, checkin: Checkin) -> Workers:
    """Return Workers that all use the same checkout and check-in."""
    return Workers(workers, lambda index: (checkout, checkin), sql)


# -- baselines --------------------------------------------------------------------------------


@contextmanager
def open_nopool(setup: Setup) -> Iterator[Workers]:
    """Give each of min(workers, size) workers its own connection: the physical limit."""
    count = min(setup.workers, setup.size)
    conns = [setup.connect() for _ in range(count)]
    try:

        def ops(index: int) -> tuple[Checkout, Checkin]:
            return itertools.repeat(conns[index]).__next__, keep

        yield Workers(count, ops, setup.driver.sql)
    finally:
        for conn in conns:
            conn.close()


@contextmanager
def open_connect(setup: Setup) -> Iterator[Workers]:
    """Connect for every request and close after it (no pool at all)."""
    connect = partial(setup.module.connect, **setup.kwargs)
    yield same_ops(setup.workers, setup.driver.sql, connect, close)


# -- dbapi_pool -------------------------------------------------------------------------------


def dbapi_pool_opener(**settings: Any) -> Opener:
    """Build the opener of a dbapi_pool ConnectionPool with these settings (else defaults)."""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        from dbapi_pool import ConnectionPool

        size = setup.size
        pool = ConnectionPool(
            setup.module, min_size=size, max_size=size, **settings, **setup.kwargs
        )
        try:
            yield same_ops(setup.workers, setup.driver.sql, pool.get, pool.put)
        finally:
            pool.close()

    return open_pool


def dbapi_pool_async_opener() -> AsyncOpener:
    """Build the opener of a dbapi_pool AsyncConnectionPool (defaults): asyncio tasks, the
    driver's calls offloaded to each connection's thread."""

    @asynccontextmanager
    async def open_pool(setup: Setup) -> AsyncIterator[AsyncWorkers]:
        from dbapi_pool import AsyncConnectionPool

        size, sql = setup.size, setup.driver.sql
        async with AsyncConnectionPool(
            setup.module, min_size=size, max_size=size, **setup.kwargs
        ) as pool:

            async def request(index: int) -> float:
                start = perf_counter()
                conn = await pool.get()
                wait = perf_counter() - start
                cur = conn.cursor()
                await cur.execute(sql)
                await cur.fetchone()
                await cur.close()
                await pool.put(conn)
                return wait

            yield AsyncWorkers(setup.workers, request)

    return open_pool


# -- peers ------------------------------------------------------------------------------------


def sqlalchemy_opener(reset: bool = True) -> Opener:
    """Build the opener of SQLAlchemy's QueuePool used standalone (rollback on return)."""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        from sqlalchemy.pool import QueuePool

        pool = QueuePool(
            setup.connect,
            pool_size=setup.size,
            max_overflow=0,
            reset_on_return="rollback" if reset else None,
        )
        try:
            fill(pool.connect, close, setup.size)
            yield same_ops(setup.workers, setup.driver.sql, pool.connect, close)
        finally:
            pool.dispose()

    return open_pool


def dbutils_opener(ping: int = 1, reset: bool = True) -> Opener:
    """Build the opener of DBUtils' PooledDB (defaults: ping at checkout, rollback on return)."""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        from dbutils.pooled_db import PooledDB

        size = setup.size
        pool = PooledDB(
            setup.module,
            mincached=size,
            maxcached=size,
            maxconnections=size,
            blocking=True,
            ping=ping,
            reset=reset,
            **setup.kwargs,
        )
        try:
            yield same_ops(setup.workers, setup.driver.sql, pool.connection, close)
        finally:
            pool.close()

    return open_pool


def psycopg2_pool_class(setup: Setup) -> type:
    """Return psycopg2's ThreadedConnectionPool, connecting through ``setup``'s driver."""
    import psycopg2.pool

    class ThreadedPool(psycopg2.pool.ThreadedConnectionPool):  # type: ignore[misc]
        """Connect with the scenario's module (psycopg2, or the fake driver)."""

        def _connect(self, key: Any = None) -> Any:
            conn = setup.connect()
            if key is not None:
                self._used[key] = conn
                self._rused[id(conn)] = key
            else:
                self._pool.append(conn)
            return conn

    return ThreadedPool


@contextmanager
def open_psycopg2_pool(setup: Setup) -> Iterator[Workers]:
    """Open psycopg2.pool.ThreadedConnectionPool (minconn = maxconn) behind a semaphore.

    Its getconn() raises PoolError when every connection is out instead of waiting, so a
    BoundedSemaphore of the pool's size makes callers wait (perf-anchors.md finding 5).
    """
    import threading

    size = setup.size
    pool = psycopg2_pool_class(setup)(size, size)
    semaphore = threading.BoundedSemaphore(size)
    acquire, release = semaphore.acquire, semaphore.release
    getconn, putconn = pool.getconn, pool.putconn

    def checkout() -> Any:
        acquire()
        return getconn()

    def checkin(conn: Any) -> None:
        putconn(conn)
        release()

    try:
        yield same_ops(setup.workers, setup.driver.sql, checkout, checkin)
    finally:
        pool.closeall()


@contextmanager
def open_psycopg_pool(setup: Setup) -> Iterator[Workers]:
    """Open psycopg_pool.ConnectionPool (sync, psycopg 3), min = max = size, filled."""
    from psycopg_pool import ConnectionPool

    size = setup.size
    pool = ConnectionPool(
        "", kwargs=setup.kwargs, min_size=size, max_size=size, open=False, name="compare"
    )
    pool.open(wait=True, timeout=10)
    try:
        yield same_ops(setup.workers, setup.driver.sql, pool.getconn, pool.putconn)
    finally:
        pool.close()


@contextmanager
def open_simplequeue(setup: Setup) -> Iterator[Workers]:
    """Keep the connections in a queue.SimpleQueue: get/put in C, nothing else (no reset,
    no checks, no fairness): the cheapest pool possible, a floor for the others."""
    import queue

    idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
    conns = [setup.connect() for _ in range(setup.size)]
    for conn in conns:
        idle.put(conn)
    try:
        yield same_ops(setup.workers, setup.driver.sql, idle.get, idle.put)
    finally:
        for conn in conns:
            conn.close()


class _Lent:
    """The least a pool's proxy can be: the connection until returned, then nothing."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def cursor(self) -> Any:
        return self.conn.cursor()


@contextmanager
def open_lockedproxy(setup: Setup) -> Iterator[Workers]:
    """Keep the connections in a list under a threading.Lock and lend each in a proxy that
    goes dead on return: the cheapest pool that still has a lock and a proxy (no clock,
    no reset, no checks, no stats, no waiting: an empty list raises). A floor for S1.1."""
    import threading

    lock = threading.Lock()
    conns = [setup.connect() for _ in range(setup.size)]
    idle = list(conns)

    def get() -> _Lent:
        with lock:
            return _Lent(idle.pop())

    def put(lent: _Lent) -> None:
        conn, lent.conn = lent.conn, None
        with lock:
            idle.append(conn)

    try:
        yield same_ops(setup.workers, setup.driver.sql, get, put)
    finally:
        for conn in conns:
            conn.close()
