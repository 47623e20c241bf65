"""AsyncConnectionPool under faults: cancellation at every stage (F13), a leaked
connection (F12) and a restart (F1), against the private servers (PostgreSQL with psycopg2;
the cancelled query on MariaDB with PyMySQL too).

Each test runs its own event loop (``asyncio.run``) under an overall time bound, and
checks the server afterwards: no session left running a statement, no more sessions
than ``max_size``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from dbapi_pool import AsyncConnectionPool

from .adapters import ServerAdapter, on_servers
from .chaosproxy import ChaosProxy
from .pgdrivers import load, pg_kwargs
from .servers import PrivatePostgres
from .support import wait_until

ProxyFactory = Callable[[int], ChaosProxy]
T = TypeVar("T")

#: Overall bound of one test's event loop.
LOOP_BOUND = 60.0


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main()`` on a fresh event loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), LOOP_BOUND)

    return asyncio.run(bounded())


async def fetch_value(conn: Any, sql: str) -> Any:
    """Run ``sql`` on an async pooled connection and return the first value."""
    cursor = await conn.execute(sql)
    row = await cursor.fetchone()
    await cursor.close()
    return row[0]


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``check()`` on the loop until it holds or time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()


def pg_pool(pg: PrivatePostgres, app_name: str, **settings: Any) -> AsyncConnectionPool:
    """Make an async psycopg2 pool on the private PostgreSQL."""
    kwargs = pg_kwargs("psycopg2", pg.kwargs(), app_name)
    return AsyncConnectionPool(load("psycopg2"), name="faults-async", **settings, **kwargs)


# -- F13: cancellation -----------------------------------------------------------------


@pytest.mark.postgres
def test_f13_cancel_while_waiting_loses_no_slot(pg: PrivatePostgres, app_name: str) -> None:
    """Five tasks wait for the only connection and are cancelled: the queue empties, no
    slot is lost, and the connection serves the next caller."""

    async def main() -> None:
        async with pg_pool(pg, app_name, max_size=1) as pool:
            held = await pool.get()
            waiting = [asyncio.create_task(pool.get()) for _ in range(5)]
            assert await eventually(lambda: pool.stats().waiting == 5)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            assert all(task.cancelled() for task in waiting)
            assert pool.stats().waiting == 0
            await pool.put(held)
            async with pool.connection(timeout=10) as conn:
                assert await fetch_value(conn, "SELECT 1") == 1
            stats = pool.stats()
            assert (stats.size, stats.idle, stats.in_use) == (1, 1, 0)

    run(main)
    assert pg.count_connections(app_name) == 0


@pytest.mark.postgres
def test_f13_cancel_after_hand_off_gives_the_connection_back(
    pg: PrivatePostgres, app_name: str
) -> None:
    """A waiter is handed the connection and cancelled before it runs: the connection
    goes back to the idle stack (same backend pid next time), nothing is closed."""

    async def main() -> None:
        async with pg_pool(pg, app_name, max_size=1) as pool:
            held = await pool.get()
            pid = await fetch_value(held, "SELECT pg_backend_pid()")
            await held.commit()
            waiter = asyncio.create_task(pool.get())
            assert await eventually(lambda: pool.stats().waiting == 1)
            await pool.put(held)  # hands the connection to the waiter...
            waiter.cancel()  # ...which is cancelled before it could run
            with pytest.raises(asyncio.CancelledError):
                await waiter
            stats = pool.stats()
            assert (stats.idle, stats.in_use, stats.waiting) == (1, 0, 0)
            async with pool.connection(timeout=10) as conn:
                assert await fetch_value(conn, "SELECT pg_backend_pid()") == pid
            assert pool.stats().closed_total == 0

    run(main)


@on_servers(pg=("psycopg2",), mariadb=("pymysql",))
def test_f13_cancel_during_a_query_stops_it_on_the_server_and_keeps_the_session(
    db: ServerAdapter,
) -> None:
    """A task cancelled during a 30 s sleep on the server: it ends at once, the pool
    cancels the statement on the server (pg_cancel_backend; KILL QUERY through a new
    session), rolls the session back once the call returned, and lends the same session
    again; the server shows it idle, not still running."""

    async def main() -> None:
        pool = AsyncConnectionPool(
            db.module, name="faults-async", max_size=1, **db.connect_kwargs()
        )
        async with pool:
            sessions: list[int] = []

            async def sleeper() -> None:
                async with pool.connection() as conn:
                    sessions.append(await fetch_value(conn, db.session_sql))
                    await fetch_value(conn, db.sleep_sql)

            task = asyncio.create_task(sleeper())
            assert await eventually(lambda: bool(sessions) and db.running(sessions[0]))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await eventually(lambda: db.idle(sessions[0]))
            async with pool.connection(timeout=20) as conn:
                assert await fetch_value(conn, db.session_sql) == sessions[0]
            assert pool.stats().closed_total == 0

    run(main)


@pytest.mark.postgres
def test_f13_cancel_while_connecting_closes_the_late_session(
    pg: PrivatePostgres, make_proxy: ProxyFactory, app_name: str
) -> None:
    """A task cancelled while its connect runs (slowed by 300 ms of latency each way):
    the connect finishes in its thread, the pool closes that session
    (closes['late_connect']) and frees the slot."""
    proxy = make_proxy(pg.port)
    proxy.set_latency(0.3)

    async def main() -> None:
        kwargs = pg_kwargs("psycopg2", pg.kwargs(port=proxy.port), app_name)
        pool = AsyncConnectionPool(load("psycopg2"), max_size=1, connect_timeout=20, **kwargs)
        async with pool:
            task = asyncio.create_task(pool.get())
            assert await eventually(lambda: pool.stats().connecting == 1)
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await eventually(lambda: pool.stats().closes["late_connect"] == 1, 30)
            assert pool.stats().size == 0

    run(main)
    assert wait_until(lambda: pg.count_connections(app_name) == 0, 15)


# -- F12: a leaked async connection ----------------------------------------------------


@pytest.mark.postgres
def test_f12_collected_async_connection_is_closed_with_a_warning(
    pg: PrivatePostgres, app_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An AsyncPooledConnection dropped without put(): a WARNING, the session is closed
    on the server, and the slot serves the next get()."""
    caplog.set_level(logging.WARNING, logger="dbapi_pool")

    async def main() -> None:
        async with pg_pool(pg, app_name, max_size=1) as pool:
            conn = await pool.get()
            old = await fetch_value(conn, "SELECT pg_backend_pid()")
            del conn
            gc.collect()
            async with pool.connection(timeout=10) as again:
                assert await fetch_value(again, "SELECT pg_backend_pid()") != old
            assert pool.stats().closes["abandoned"] == 1
            assert await eventually(lambda: old not in pg.backend_pids(app_name))

    run(main)
    assert any("garbage-collected" in r.getMessage() for r in caplog.records)


# -- F1 (async): restart ---------------------------------------------------------------


@pytest.mark.postgres
def test_f1_async_restart_replaces_stale_connections_inside_get(
    pg: PrivatePostgres, app_name: str
) -> None:
    """After a fast restart, the async pool checks its stale idle connections in their
    threads before lending them and opens new ones; no caller sees an error."""

    async def main() -> None:
        async with pg_pool(pg, app_name, max_size=2, check_idle_after=0) as pool:
            conns = [await pool.get() for _ in range(2)]
            for conn in conns:
                await pool.put(conn)
            pg.restart()
            async with pool.connection(timeout=15) as conn:
                assert await fetch_value(conn, "SELECT 1") == 1
            assert pool.stats().closes["failed_check"] == 2
            assert pool.stats().size == 1

    run(main)
