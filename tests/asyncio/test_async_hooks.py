"""The lifecycle hooks ``configure`` and ``check`` of AsyncConnectionPool (issue 12, part 1).

Plain hooks run in the connection's own thread with the driver's connection; coroutine
hooks are awaited on the loop with an async connection whose calls hop to that thread.
On the fake driver, then on the real servers (a missing server or driver fails the test).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from dbapi_pool import (
    AsyncConnectionPool,
    AsyncPooledConnection,
    ConnectionReleased,
    ConnectTimeout,
    DriverProfile,
    register_profile,
)
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- configure ------------------------------------------------------------------------


def test_a_plain_configure_runs_in_the_connections_own_thread() -> None:
    seen: list[tuple[Any, int]] = []

    def configure(conn: Any) -> None:
        seen.append((conn, threading.get_ident()))

    async def main() -> tuple[Any, int]:
        async with AsyncConnectionPool(FakeDatabase(), name="p", configure=configure) as pool:
            async with pool.connection() as conn:
                return conn.raw, await conn.run(threading.get_ident)

    raw, thread = run(main())
    assert seen == [(raw, thread)]
    assert thread != threading.get_ident()


def test_a_coroutine_configure_queries_through_an_async_connection() -> None:
    db = FakeDatabase()
    lent: list[Any] = []

    async def configure(conn: AsyncPooledConnection) -> None:
        lent.append(conn)
        cur = await conn.execute("SET TIME ZONE 'UTC'")
        await cur.close()
        lent.append(await conn.run(threading.get_ident))

    async def main() -> tuple[Any, int]:
        async with AsyncConnectionPool(db, name="p", min_size=1, configure=configure) as pool:
            assert pool.stats().idle == 1  # the pool's own connect was configured too
            async with pool.connection() as conn:
                return conn.raw, await conn.run(threading.get_ident)

    raw, thread = run(main())
    hooked, hook_thread = lent
    assert isinstance(hooked, AsyncPooledConnection)
    assert hook_thread == thread  # its calls ran in the connection's own thread
    assert ("SET TIME ZONE 'UTC'", None) in [e.args for e in db.log if e.serial == raw.serial]
    with pytest.raises(ConnectionReleased):  # lent to the hook only while it ran
        hooked.cursor()


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_a_configure_that_raises_is_a_failed_connect(kind: str) -> None:
    db = FakeDatabase()
    boom = OperationalError("SET refused")

    def plain(conn: Any) -> None:
        raise boom

    async def coroutine(conn: AsyncPooledConnection) -> None:
        await conn.execute("SELECT 1")
        raise boom

    async def main() -> Any:
        configure = plain if kind == "plain" else coroutine
        async with AsyncConnectionPool(
            db, name="p", max_size=1, configure=configure, reconnect_min=0, reconnect_max=0
        ) as pool:
            with pytest.raises(OperationalError) as raised:
                await pool.get()
            assert raised.value is boom
            return pool.stats()

    stats = run(main())
    assert (stats.connect_failures, stats.connects) == (1, 0)
    assert db.connects == 1
    assert db.open_connections == []


def test_a_coroutine_configure_is_bounded_by_connect_timeout() -> None:
    db = FakeDatabase()

    async def configure(conn: AsyncPooledConnection) -> None:
        await asyncio.sleep(30)

    async def main() -> Any:
        async with AsyncConnectionPool(
            db, name="p", max_size=1, configure=configure, connect_timeout=0.2
        ) as pool:
            with pytest.raises(ConnectTimeout):
                await pool.get()
            for _ in range(100):  # the connection is closed, its slot freed
                if pool.stats().size == 0 and not db.open_connections:
                    break
                await asyncio.sleep(0.05)
            return pool.stats()

    stats = run(main())
    assert (stats.size, stats.connects) == (0, 0)
    assert db.connects == 1
    assert db.open_connections == []


def test_configure_work_left_in_a_transaction_is_committed() -> None:
    register_profile(
        DriverProfile(name="fakedb_tells_a", transaction_idle=lambda c: not c.in_transaction)
    )

    async def configure(conn: AsyncPooledConnection) -> None:
        await conn.execute("INSERT INTO settings VALUES (1)")

    async def main() -> Any:
        db = FakeDatabase(name="fakedb_tells_a")
        async with AsyncConnectionPool(db, name="p", configure=configure) as pool:
            async with pool.connection() as conn:
                return conn.raw.commits, conn.raw.in_transaction

    assert run(main()) == (1, False)


# -- check ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
@pytest.mark.parametrize("verdict", ["returns False", "raises"])
def test_a_connection_the_check_rejects_is_replaced_within_the_same_get(
    kind: str, verdict: str
) -> None:
    db = FakeDatabase()
    calls: list[Any] = []

    def decide(raw: Any) -> bool:
        calls.append(raw)
        if verdict == "raises":
            raise OperationalError("server gone")
        return False

    def plain(conn: Any) -> bool:
        return decide(conn)

    async def coroutine(conn: AsyncPooledConnection) -> bool:
        await conn.execute("SELECT 1")
        return decide(conn.raw)

    async def main() -> tuple[Any, Any, Any]:
        check = plain if kind == "plain" else coroutine
        async with AsyncConnectionPool(db, name="p", max_size=1, check=check) as pool:
            async with pool.connection() as conn:  # new: not checked
                first = conn.raw
            assert calls == []
            async with pool.connection(timeout=1) as conn:
                return first, conn.raw, pool.stats()

    first, second, stats = run(main())
    assert calls == [first]
    assert second is not first
    assert first.closed
    assert stats.closes["failed_check"] == 1


@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_a_check_passes_unless_it_returns_false(kind: str) -> None:
    calls: list[Any] = []

    def plain(conn: Any) -> None:
        calls.append(conn)

    async def coroutine(conn: AsyncPooledConnection) -> int:
        calls.append(conn.raw)
        return 0

    async def main() -> Any:
        check = plain if kind == "plain" else coroutine
        async with AsyncConnectionPool(FakeDatabase(), name="p", max_size=1, check=check) as pool:
            for _ in range(3):
                async with pool.connection() as conn:
                    raw = conn.raw
            return raw, pool.stats()

    raw, stats = run(main())
    assert calls == [raw, raw]
    assert stats.connects == 1


@pytest.mark.parametrize("setting", ["configure", "check"])
def test_a_hook_that_is_not_callable_is_refused(setting: str) -> None:
    with pytest.raises(TypeError, match=rf"pool 'p': {setting} must be None or a callable"):
        AsyncConnectionPool(FakeDatabase(), name="p", **{setting: 1})


# -- real PostgreSQL --------------------------------------------------------------------

PG = {"host": "127.0.0.1", "user": "postgres", "dbname": "test"}


def _driver(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        pytest.fail(f"driver {name!r} is not installed: {exc}", pytrace=False)


async def _scalar(conn: AsyncPooledConnection, sql: str) -> Any:
    cur = await conn.execute(sql)
    row = await cur.fetchone()
    await cur.close()
    return row[0]


async def _count_sessions(marker: str) -> int:
    psycopg2 = _driver("psycopg2")
    monitor = psycopg2.connect(**PG)
    try:
        cur = monitor.cursor()
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (marker,))
        return int(cur.fetchone()[0])
    finally:
        monitor.close()


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
@pytest.mark.parametrize("kind", ["plain", "coroutine"])
def test_configure_sets_the_session_state_every_lent_connection_shows(
    driver: str, kind: str
) -> None:
    module = _driver(driver)

    def plain(conn: Any) -> None:
        cur = conn.cursor()
        cur.execute("SET dbapi_pool.tag = 'hooked'")
        cur.close()

    async def coroutine(conn: AsyncPooledConnection) -> None:
        await conn.execute("SET dbapi_pool.tag = 'hooked'")

    async def main() -> list[Any]:
        configure = plain if kind == "plain" else coroutine
        tags = []
        async with AsyncConnectionPool(module, max_size=2, configure=configure, **PG) as pool:
            for _ in range(3):
                conns = [await pool.get(), await pool.get()]
                for conn in conns:
                    tags.append(await _scalar(conn, "SELECT current_setting('dbapi_pool.tag')"))
                    await conn.rollback()  # the caller's rollback keeps it: it was committed
                for conn in conns:
                    await pool.put(conn)
            assert pool.stats().connects == 2
        return tags

    assert run(main()) == ["hooked"] * 6


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_a_failing_coroutine_configure_leaves_no_session_on_the_server(driver: str) -> None:
    module = _driver(driver)
    marker = f"dbapi_pool_hooks_{uuid.uuid4().hex[:12]}"

    async def configure(conn: AsyncPooledConnection) -> None:
        await conn.execute("SELECT 1")
        raise module.OperationalError("configure refused")

    async def main() -> int:
        async with AsyncConnectionPool(
            module, max_size=1, configure=configure, application_name=marker, **PG
        ) as pool:
            with pytest.raises(module.OperationalError, match="configure refused"):
                await pool.get()
            assert pool.stats().connect_failures == 1
            return await _count_sessions(marker)

    assert run(main()) == 0


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_a_coroutine_check_that_rejects_replaces_the_session(driver: str) -> None:
    module = _driver(driver)
    rejected: set[int] = set()

    async def check(conn: AsyncPooledConnection) -> bool:
        return await _scalar(conn, "SELECT pg_backend_pid()") not in rejected

    async def main() -> tuple[int, int, Any]:
        async with AsyncConnectionPool(module, max_size=1, check=check, **PG) as pool:
            async with pool.connection() as conn:
                first = await _scalar(conn, "SELECT pg_backend_pid()")
            async with pool.connection() as conn:  # passed: lent with no transaction open
                raw = conn.raw
                idle = 0  # psycopg's TransactionStatus.IDLE, psycopg2's TRANSACTION_STATUS_IDLE
                status = (
                    raw.get_transaction_status()
                    if driver == "psycopg2"
                    else raw.info.transaction_status
                )
                assert status == idle
            rejected.add(first)
            async with pool.connection(timeout=5) as conn:
                second = await _scalar(conn, "SELECT pg_backend_pid()")
            return first, second, pool.stats()

    first, second, stats = run(main())
    assert first != second
    assert stats.closes["failed_check"] == 1
