"""AsyncConnectionPool with real drivers on the real servers.

PostgreSQL at 127.0.0.1:5432 and MariaDB at 127.0.0.1:3306 must answer: a missing server
or driver fails these tests, it never skips them. Each pool's sessions are found on the
server (by application_name on PostgreSQL, by the CONNECTION_ID() they report on MariaDB)
so that the checks are exact while other tests run.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool, AsyncDatabaseConnector

PG = {"host": "127.0.0.1", "user": "postgres"}
DRIVERS: dict[str, dict[str, Any]] = {
    "psycopg2": {**PG, "dbname": "test"},
    "psycopg": {**PG, "dbname": "test"},
    "pg8000": {**PG, "database": "test"},
    "pymysql": {"host": "127.0.0.1", "user": "root", "password": "", "database": "test"},
    "MySQLdb": {"host": "127.0.0.1", "user": "root", "passwd": "", "db": "test"},
}
POSTGRES_DRIVERS = ("psycopg2", "psycopg", "pg8000")
SLEEP = {"postgres": "SELECT pg_sleep(%s)", "mariadb": "SELECT SLEEP(%s)"}


def server_of(driver: str) -> str:
    return "postgres" if driver in POSTGRES_DRIVERS else "mariadb"


def driver_param(name: str) -> Any:
    mark = pytest.mark.postgres if server_of(name) == "postgres" else pytest.mark.mariadb
    return pytest.param(name, id=name, marks=mark)


def load(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"driver {name!r} is not installed: {exc}", pytrace=False)


def monitor(server: str) -> Any:
    """Open an autocommit connection for looking at the server's sessions."""
    try:
        if server == "postgres":
            psycopg2 = load("psycopg2")
            conn = psycopg2.connect(**PG, dbname="test")
        else:
            pymysql = load("pymysql")
            conn = pymysql.connect(**DRIVERS["pymysql"])
        conn.autocommit = True
        return conn
    except Exception as exc:
        pytest.fail(f"the {server} server does not answer: {exc}", pytrace=False)


def scalar(conn: Any, sql: str, params: Any = None) -> Any:
    cur = conn.cursor()
    cur.execute(sql, params)
    row = cur.fetchone()
    cur.close()
    return row[0]


class Sessions:
    """Count a pool's sessions on the server, and those running a statement."""

    def __init__(self, driver: str) -> None:
        self.server = server_of(driver)
        self.marker = f"dbapi_pool_async_{uuid.uuid4().hex[:12]}"
        self.ids: set[int] = set()
        self._monitor = monitor(self.server)

    def connect_kwargs(self, driver: str) -> dict[str, Any]:
        kwargs = dict(DRIVERS[driver])
        if self.server == "postgres":
            kwargs["application_name"] = self.marker
        return kwargs

    async def record(self, conn: Any) -> None:
        """Remember a MariaDB session's id (PostgreSQL sessions carry the marker)."""
        if self.server == "mariadb":
            cur = await conn.execute("SELECT CONNECTION_ID()")
            self.ids.add((await cur.fetchone())[0])

    def count(self, *, running: bool = False) -> int:
        if self.server == "postgres":
            sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            if running:
                sql += " AND state = 'active'"
            return int(scalar(self._monitor, sql, (self.marker,)))
        if not self.ids:
            return 0
        ids = ",".join(str(i) for i in self.ids)
        sql = f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID IN ({ids})"
        if running:
            sql += " AND COMMAND = 'Query'"
        return int(scalar(self._monitor, sql))

    def eventually(self, expected: int, *, running: bool = False, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while (seen := self.count(running=running)) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        return seen

    def close(self) -> None:
        self._monitor.close()


@pytest.fixture
def sessions(request: pytest.FixtureRequest) -> Any:
    found = Sessions(request.node.callspec.params["driver"])
    yield found
    found.close()


async def full_strength(pool: AsyncConnectionPool, size: int) -> None:
    """Hold ``size`` connections at once, each running a query."""
    conns = [await pool.get(timeout=10) for _ in range(size)]
    await asyncio.gather(*(c.execute("SELECT 1") for c in conns))
    for conn in conns:
        await pool.put(conn)


@pytest.mark.parametrize("driver", [driver_param(n) for n in DRIVERS])
def test_classic_idiom_commit_and_rollback(driver: str, sessions: Sessions) -> None:
    module = load(driver)
    table = f"async_t_{uuid.uuid4().hex[:10]}"

    async def main() -> tuple[Any, Any]:
        pool = AsyncConnectionPool(module, max_size=2, **sessions.connect_kwargs(driver))
        async with pool:
            async with pool.connection() as conn:
                await conn.execute(f"CREATE TABLE {table} (x INTEGER)")
            async with pool.connection() as conn:
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
            with pytest.raises(RuntimeError):
                async with pool.connection() as conn:
                    await conn.execute(f"INSERT INTO {table} VALUES (2)")
                    raise RuntimeError("roll me back")
            conn = await pool.get()
            try:
                async with conn.cursor() as cur:
                    await cur.execute(f"SELECT x FROM {table} ORDER BY x")
                    rows = await cur.fetchall()
                await conn.execute(f"DROP TABLE {table}")
                await conn.commit()
            finally:
                await pool.put(conn)
            return rows, pool.stats()

    rows, stats = asyncio.run(main())
    assert [tuple(r) for r in rows] == [(1,)]
    assert stats.in_use == 0


def test_sqlite3_async_idiom(tmp_path: Path) -> None:
    import sqlite3

    async def main() -> Any:
        async with AsyncConnectionPool(sqlite3, database=str(tmp_path / "a.db")) as pool:
            async with pool.connection() as conn:
                await conn.execute("CREATE TABLE t (x)")
                await conn.execute("INSERT INTO t VALUES (1)")
            async with pool.connection() as conn:
                return await (await conn.execute("SELECT x FROM t")).fetchall()

    assert asyncio.run(main()) == [(1,)]


@pytest.mark.postgres
def test_event_loop_keeps_serving_while_queries_run() -> None:
    """16 tasks share 8 connections, each running pg_sleep(0.5); a 1 ms ticker runs.

    A query run on the loop would stall the ticker for its whole 0.5 s; the bounds sit far
    from that (a busy shared machine lags a loop by tens of ms on its own), and from the
    serial time (8 s).
    """
    psycopg2 = load("psycopg2")
    monitor("postgres").close()

    async def main() -> tuple[float, float]:
        lags: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                before = loop.time()
                await asyncio.sleep(0.001)
                lags.append(loop.time() - before - 0.001)

        async with AsyncConnectionPool(psycopg2, max_size=8, **PG, dbname="test") as pool:

            async def query() -> None:
                async with pool.connection() as conn:
                    await conn.execute("SELECT pg_sleep(0.5)")

            tick = asyncio.ensure_future(ticker())
            started = time.monotonic()
            await asyncio.gather(*(query() for _ in range(16)))
            elapsed = time.monotonic() - started
            stop.set()
            await tick
        return max(lags), elapsed

    max_lag, elapsed = asyncio.run(main())
    assert max_lag < 0.25, f"the loop stalled {max_lag * 1000:.1f} ms"
    assert elapsed < 16 * 0.5 / 2  # far from serial (8 s); ideal is 2 rounds, 1 s


@pytest.mark.parametrize("driver", [driver_param(n) for n in DRIVERS])
def test_cancel_while_querying_frees_the_server_session(driver: str, sessions: Sessions) -> None:
    module = load(driver)
    sleep = SLEEP[sessions.server] % 30

    async def main() -> tuple[float, Any]:
        pool = AsyncConnectionPool(module, max_size=2, **sessions.connect_kwargs(driver))
        async with pool:
            conn = await pool.get()
            await sessions.record(conn)
            query = asyncio.ensure_future(conn.execute(sleep))
            await asyncio.sleep(0.3)
            assert sessions.count(running=True) == 1
            loop = asyncio.get_running_loop()
            started = loop.time()
            query.cancel()
            with pytest.raises(asyncio.CancelledError):
                await query
            cancelled_after = loop.time() - started
            # The server stops the query; the session itself stays and is reused.
            assert sessions.eventually(0, running=True) == 0
            for _ in range(100):
                if pool.stats().in_use == 0:
                    break
                await asyncio.sleep(0.05)
            await full_strength(pool, 2)
            return cancelled_after, pool.stats()

    cancelled_after, stats = asyncio.run(main())
    assert cancelled_after < 1.0
    assert (stats.in_use, stats.waiting) == (0, 0)
    assert stats.size <= 2
    assert sessions.eventually(0) == 0  # closed with the pool


@pytest.mark.parametrize("driver", [driver_param("psycopg2"), driver_param("pymysql")])
def test_timeout_while_querying_behaves_like_a_cancel(driver: str, sessions: Sessions) -> None:
    module = load(driver)
    sleep = SLEEP[sessions.server] % 30

    async def main() -> Any:
        pool = AsyncConnectionPool(module, max_size=1, **sessions.connect_kwargs(driver))
        async with pool:
            async with pool.connection() as conn:
                await sessions.record(conn)
            with pytest.raises(asyncio.TimeoutError):
                async with pool.connection() as conn:
                    await asyncio.wait_for(conn.execute(sleep), 0.3)
            assert sessions.eventually(0, running=True) == 0
            await full_strength(pool, 1)
            return pool.stats()

    stats = asyncio.run(main())
    assert (stats.in_use, stats.size) == (0, 1)


@pytest.mark.parametrize("driver", [driver_param("psycopg2"), driver_param("MySQLdb")])
def test_cancel_while_waiting_loses_no_slot(driver: str, sessions: Sessions) -> None:
    module = load(driver)

    async def main() -> Any:
        pool = AsyncConnectionPool(module, max_size=2, **sessions.connect_kwargs(driver))
        async with pool:
            held = [await pool.get(), await pool.get()]
            for conn in held:
                await sessions.record(conn)
            waiting = [asyncio.ensure_future(pool.get(timeout=10)) for _ in range(3)]
            await asyncio.sleep(0.1)
            assert pool.stats().waiting == 3
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            for conn in held:
                await pool.put(conn)
            await full_strength(pool, 2)
            return pool.stats()

    stats = asyncio.run(main())
    assert (stats.waiting, stats.in_use, stats.size) == (0, 0, 2)
    assert sessions.eventually(0) == 0


@pytest.mark.postgres
@pytest.mark.mariadb
def test_async_connector_with_two_real_databases() -> None:
    psycopg2, pymysql = load("psycopg2"), load("pymysql")

    async def main() -> list[Any]:
        pg = AsyncDatabaseConnector(psycopg2, {"default": {"user": "postgres"}}, max_size=2)
        my = AsyncDatabaseConnector(pymysql, {"127.0.0.1": {"user": "root", "password": ""}})
        async with pg, my:
            results = []
            for connector in (pg, my):
                pool = connector.get("127.0.0.1", "test")
                assert connector.get("127.0.0.1", "test") is pool
                async with pool.connection() as conn:
                    results.append(await (await conn.execute("SELECT 1")).fetchone())
        return results

    assert [tuple(r) for r in asyncio.run(main())] == [(1,), (1,)]
