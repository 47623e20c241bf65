"""AsyncConnectionPool's runtime control with real drivers, sessions counted on the server.

resize, drain, pause/resume, check, open(wait=True)/wait_ready, keepalive and a coroutine
``connect_args``, on PostgreSQL and MariaDB. The pools' sessions are found on the server
(``pg_stat_activity``, ``information_schema.PROCESSLIST``) from a separate monitoring
connection (support.py).

"Close means closed" is checked on both sides: when an operation returns, the driver's
connection is already closed (using it raises); the server's session is then polled until
it is gone (a driver's close() may return before the server ended the session: that is
the server-side half of issue 11's defect 1, handled where closes are confirmed).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from dbapi_pool import AsyncConnectionPool, AsyncDatabaseConnector, PoolTimeout

from .support import POSTGRES, Database, driver_params, scalar, wait_until

T = TypeVar("T")

#: The drivers most runtime operations are tried with: one per server, plus the C ones
#: for drain and check (every network driver).
PG_AND_MARIADB = driver_params("psycopg2", "pymysql")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def async_pool(db: Database, marker: str | None = None, **settings: Any) -> AsyncConnectionPool:
    """Make an async pool on the test server (close it with ``async with``)."""
    settings.setdefault("max_idle", None)
    settings.setdefault("max_age", None)
    kwargs = {**db.connect_kwargs(marker or db.new_marker()), **settings}
    return AsyncConnectionPool(db.module, **kwargs)


async def session_of(db: Database, conn: Any) -> Any:
    return await conn.run(db.session_id, conn.raw)


async def idle_sessions(db: Database, pool: AsyncConnectionPool, count: int) -> list[Any]:
    """Open ``count`` connections and return them idle; return (session id, raw) pairs."""
    conns = [await pool.get(timeout=10) for _ in range(count)]
    found = [(await session_of(db, conn), conn.raw) for conn in conns]
    for conn in conns:
        await pool.put(conn)
    return found


def driver_closed(raw: Any) -> bool:
    """Tell whether a driver connection is closed on the client: using it raises."""
    try:
        cursor = raw.cursor()
        cursor.execute("SELECT 1")
    except Exception:
        return True
    return False


def kill(db: Database, session: Any) -> None:
    if db.server == POSTGRES:
        db.monitor_query("SELECT pg_terminate_backend(%s)", [int(session)])
    else:
        db.monitor_execute(f"KILL {int(session)}")
    assert db.wait_gone([session]), "the server did not end the session"


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


# -- drain and resize ----------------------------------------------------------------------


def test_drain_closes_the_idle_sessions_before_returning(net_dbenv: Database) -> None:
    db = net_dbenv

    async def main() -> tuple[list[bool], list[Any], list[Any]]:
        async with async_pool(db, max_size=3) as pool:
            old = await idle_sessions(db, pool, 3)
            await pool.drain()
            closed = [driver_closed(raw) for _, raw in old]
            new = await idle_sessions(db, pool, 3)
            return closed, [s for s, _ in old], [s for s, _ in new]

    closed, old, new = run(main())
    assert closed == [True, True, True]
    assert db.wait_gone(old)
    assert set(old).isdisjoint(new)


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_drain_closes_a_session_in_use_when_it_comes_back(net_dbenv: Database) -> None:
    db = net_dbenv

    async def main() -> tuple[bool, bool, Any]:
        async with async_pool(db, max_size=2) as pool:
            conn = await pool.get(timeout=10)
            session = await session_of(db, conn)
            await pool.drain()
            alive_in_use = db.is_alive(session)
            raw = conn.raw
            await pool.put(conn)
            return alive_in_use, driver_closed(raw), session

    alive_in_use, closed_on_return, session = run(main())
    assert alive_in_use and closed_on_return
    assert db.wait_gone([session])


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_shrinking_closes_idle_sessions_at_once_and_in_use_ones_on_return(
    net_dbenv: Database,
) -> None:
    db = net_dbenv

    async def main() -> tuple[list[bool], list[bool], list[Any], list[Any]]:
        async with async_pool(db, max_size=4) as pool:
            held = [await pool.get(timeout=10) for _ in range(2)]
            held_sessions = [await session_of(db, conn) for conn in held]
            idle = await idle_sessions(db, pool, 2)
            await pool.resize(max_size=1)
            idle_closed = [driver_closed(raw) for _, raw in idle]
            raws = [conn.raw for conn in held]
            for conn in held:
                await pool.put(conn)  # the first is above max_size=1: closed on return
            held_closed = [driver_closed(raw) for raw in raws]
            return idle_closed, held_closed, [s for s, _ in idle], held_sessions

    idle_closed, held_closed, idle, held = run(main())
    assert idle_closed == [True, True]
    assert held_closed == [True, False]
    assert db.wait_gone(idle + held)  # the last one closed with the pool


# -- pause and resume ----------------------------------------------------------------------


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_pause_holds_checkouts_and_keeps_the_sessions_open(net_dbenv: Database) -> None:
    db = net_dbenv

    async def main() -> tuple[Any, int, Any]:
        async with async_pool(db, max_size=2) as pool:
            [(session, _)] = await idle_sessions(db, pool, 1)
            pool.pause()
            with pytest.raises(PoolTimeout):
                await pool.get(timeout=0.2)
            alive = db.alive_count([session])
            waiting = asyncio.ensure_future(pool.get(timeout=10))
            await asyncio.sleep(0.1)
            pool.resume()
            conn = await asyncio.wait_for(waiting, 10)
            again = await session_of(db, conn)
            await pool.put(conn)
            return session, alive, again

    session, alive, again = run(main())
    assert alive == 1
    assert again == session  # the very same session, kept through the pause


# -- check and keepalive -------------------------------------------------------------------


def test_check_replaces_a_session_the_server_killed(net_dbenv: Database) -> None:
    db = net_dbenv

    async def main() -> tuple[int, Any, list[Any], list[Any]]:
        async with async_pool(db, min_size=2, max_size=2) as pool:
            await pool.wait_ready(10)
            before = await idle_sessions(db, pool, 2)
            kill(db, before[0][0])
            dead = await pool.check()  # returns once the replacement is open
            after = await idle_sessions(db, pool, 2)
            return dead, pool.stats(), [s for s, _ in before], [s for s, _ in after]

    dead, stats, before, after = run(main())
    assert dead == 1
    assert stats.closes["failed_check"] == 1
    assert before[1] in after  # the live one kept
    assert before[0] not in after
    assert stats.connects == 3


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_keepalive_finds_a_silently_dropped_session_before_a_caller(net_dbenv: Database) -> None:
    db = net_dbenv

    async def main() -> tuple[bool, Any, int]:
        async with async_pool(db, min_size=2, max_size=2, keepalive=0.2) as pool:
            await pool.wait_ready(10)
            sessions = await idle_sessions(db, pool, 2)
            kill(db, sessions[0][0])
            found = await eventually(lambda: pool.stats().closes["failed_check"] == 1)
            await pool.wait_ready(10)
            fresh = await idle_sessions(db, pool, 2)
            return found, pool.stats(), db.alive_count([s for s, _ in fresh])

    found, stats, alive = run(main())
    assert found
    assert (stats.size, stats.connects, alive) == (2, 3, 2)


# -- open(wait=True) and wait_ready() ------------------------------------------------------


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_open_with_wait_returns_with_min_size_sessions_on_the_server(
    net_dbenv: Database,
) -> None:
    db = net_dbenv
    marker = db.new_marker()

    async def main() -> tuple[Any, int]:
        async with async_pool(db, marker, min_size=3, max_size=4) as pool:
            await pool.open(wait=True, timeout=10)
            stats = pool.stats()
            sessions = await idle_sessions(db, pool, 3)
            return stats, db.alive_count([s for s, _ in sessions])

    stats, alive = run(main())
    assert (stats.idle, stats.connects) == (3, 3)
    assert alive == 3
    if db.server == POSTGRES:
        assert wait_until(lambda: db.marker_count(marker) == 0)  # closed with the pool


@pytest.mark.parametrize("net_dbenv", PG_AND_MARIADB, indirect=True)
def test_wait_ready_times_out_chained_to_the_authentication_error(net_dbenv: Database) -> None:
    db = net_dbenv
    wrong = {"user": f"nobody_{uuid.uuid4().hex[:8]}"}

    async def main() -> None:
        pool = AsyncConnectionPool(db.module, **db.connect_kwargs(**wrong), min_size=1)
        async with pool:
            with pytest.raises(PoolTimeout, match="0 of min_size=1") as caught:
                await pool.wait_ready(0.5)
        assert isinstance(caught.value.__cause__, db.module.OperationalError)

    run(main())


# -- connect_args as a coroutine function --------------------------------------------------


@pytest.mark.parametrize("net_dbenv", driver_params("psycopg2", "psycopg"), indirect=True)
def test_new_application_name_from_coroutine_connect_args_after_drain(
    net_dbenv: Database,
) -> None:
    db = net_dbenv
    old_name, new_name = db.new_marker(), db.new_marker()
    current = {"application_name": old_name}

    async def connect_args() -> dict[str, Any]:
        await asyncio.sleep(0)  # a real fetch would do I/O here
        return dict(current)

    async def main() -> tuple[int, int, str]:
        async with async_pool(db, min_size=2, max_size=3, connect_args=connect_args) as pool:
            await pool.wait_ready(10)
            before = db.marker_count(old_name)
            current["application_name"] = new_name
            await pool.drain()
            await pool.wait_ready(10)
            async with pool.connection() as conn:
                seen = await conn.run(scalar, conn.raw, "SHOW application_name")
            return before, db.marker_count(new_name), seen

    before, after, seen = run(main())
    assert (before, after, seen) == (2, 2, new_name)
    assert wait_until(lambda: db.marker_count(old_name) == 0)


@pytest.mark.parametrize("net_dbenv", driver_params("pymysql", "MySQLdb"), indirect=True)
def test_rotated_password_from_coroutine_connect_args_after_drain(net_dbenv: Database) -> None:
    db = net_dbenv
    user = f"dbapi_pool_u_{uuid.uuid4().hex[:12]}"
    db.monitor_execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'first-secret'")
    db.defer(lambda: db.monitor_execute(f"DROP USER IF EXISTS '{user}'@'%'"))
    db.monitor_execute(f"GRANT SELECT ON test.* TO '{user}'@'%'")
    password_key = "passwd" if db.spec.name == "MySQLdb" else "password"
    current = {"user": user, password_key: "first-secret"}

    async def credentials() -> dict[str, Any]:
        return dict(current)

    async def main() -> tuple[list[Any], list[Any], str]:
        async with async_pool(db, min_size=2, max_size=2, connect_args=credentials) as pool:
            await pool.wait_ready(10)
            old = await idle_sessions(db, pool, 2)
            db.monitor_execute(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'second-secret'")
            current[password_key] = "second-secret"  # rotated: new connects use it
            await pool.drain()
            await pool.wait_ready(10)
            new = await idle_sessions(db, pool, 2)
            async with pool.connection() as conn:
                who = await conn.run(scalar, conn.raw, "SELECT CURRENT_USER()")
            return [s for s, _ in old], [s for s, _ in new], str(who)

    old, new, who = run(main())
    assert db.wait_gone(old)
    assert set(old).isdisjoint(new)
    assert who.startswith(user)


# -- the connector -------------------------------------------------------------------------


@pytest.mark.parametrize("net_dbenv", driver_params("psycopg2"), indirect=True)
def test_async_connector_drains_one_database_and_checks_them_all(net_dbenv: Database) -> None:
    db = net_dbenv
    credentials = {"default": {"user": "postgres", "application_name": db.new_marker()}}

    async def main() -> tuple[Any, bool, int]:
        connector = AsyncDatabaseConnector(db.module, credentials, max_idle=None, max_age=None)
        async with connector:
            test_pool = connector.get("127.0.0.1", "test")
            other_pool = connector.get("127.0.0.1", "postgres")
            [(drained, _)] = await idle_sessions(db, test_pool, 1)
            [(kept, _)] = await idle_sessions(db, other_pool, 1)
            await connector.drain(dbname="test")
            kept_alive = db.is_alive(kept)
            kill(db, kept)
            return drained, kept_alive, await connector.check()

    drained, kept_alive, dead = run(main())
    assert db.wait_gone([drained])
    assert kept_alive
    assert dead == 1
