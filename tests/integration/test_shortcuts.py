"""The one-statement shortcuts with real drivers: ``pool.execute``, ``fetchone``,
``fetchall`` and ``fetchval`` on ConnectionPool and AsyncConnectionPool (issue 15: what
asyncpg offers), against PostgreSQL (psycopg2, psycopg) and MariaDB (MySQLdb, PyMySQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool

from .support import Database, driver_params

pytestmark = pytest.mark.parametrize(
    "dbenv", driver_params("psycopg2", "psycopg", "MySQLdb", "pymysql"), indirect=True
)


def test_execute_commits_and_the_fetches_return_plain_rows(dbenv: Database) -> None:
    table = dbenv.create_table("v integer, name varchar(10)")
    pool = dbenv.make_pool(max_size=1)
    assert pool.execute(f"INSERT INTO {table} VALUES (%s, %s), (%s, %s)", (1, "a", 2, "b")) == 2
    assert dbenv.committed_rows(table) == 2  # seen from another session: committed
    select = f"SELECT v, name FROM {table} ORDER BY v"
    assert [tuple(row) for row in pool.fetchall(select)] == [(1, "a"), (2, "b")]
    assert tuple(pool.fetchone(select)) == (1, "a")
    assert pool.fetchval(f"SELECT count(*) FROM {table} WHERE v > %s", (1,)) == 1
    assert pool.fetchval(f"SELECT v FROM {table} WHERE v > 5") is None
    assert pool.fetchone(f"SELECT v FROM {table} WHERE v > 5") is None
    assert pool.fetchall(f"SELECT v FROM {table} WHERE v > 5") == []
    stats = pool.stats()
    assert (stats.connects, stats.in_use, stats.idle) == (1, 0, 1)


def test_a_failed_statement_raises_the_drivers_error_and_the_connection_is_reused(
    dbenv: Database,
) -> None:
    pool = dbenv.make_pool(max_size=1)
    with pytest.raises(dbenv.module.ProgrammingError):
        pool.fetchall("SELECT * FROM dbapi_pool_no_such_table")
    # Rolled back: PostgreSQL would refuse the next statement in an aborted transaction.
    assert pool.fetchval("SELECT 1") == 1
    stats = pool.stats()
    assert (stats.connects, stats.in_use, stats.idle) == (1, 0, 1)


def test_the_async_shortcuts_commit_fetch_and_roll_back(dbenv: Database) -> None:
    table = dbenv.create_table("v integer")

    async def main() -> Any:
        async with AsyncConnectionPool(
            dbenv.module, **dbenv.connect_kwargs(), max_size=1, name="shortcuts"
        ) as pool:
            inserted = await pool.execute(f"INSERT INTO {table} VALUES (%s), (%s)", (1, 2))
            rows = await pool.fetchall(f"SELECT v FROM {table} ORDER BY v")
            first = await pool.fetchone(f"SELECT v FROM {table} ORDER BY v")
            count = await pool.fetchval(f"SELECT count(*) FROM {table}")
            with pytest.raises(dbenv.module.ProgrammingError):
                await pool.fetchval("SELECT * FROM dbapi_pool_no_such_table")
            after = await pool.fetchval("SELECT 1")
            return inserted, rows, first, count, after, pool.stats()

    inserted, rows, first, count, after, stats = asyncio.run(main())
    assert inserted == 2 and dbenv.committed_rows(table) == 2
    assert [tuple(row) for row in rows] == [(1,), (2,)] and tuple(first) == (1,)
    assert (count, after) == (2, 1)
    assert (stats.connects, stats.in_use, stats.idle) == (1, 0, 1)
