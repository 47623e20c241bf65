"""A cursor lives no longer than its checkout, with real drivers (issue 11, defect 4).

Taken before ``put()``, a cursor used to go on running statements on the raw connection,
already lent to the next borrower (it returned that borrower's backend pid). Each test:
a pool of one connection, a cursor kept past ``put()``, a second borrower given the same
session; the kept cursor's statement must raise the driver's error and leave no trace in
the second borrower's session. The threaded pool, the asyncio pool and the eventlet
drop-in, on every driver each of them takes; the fake-driver rules are in
tests/contract/test_cursor_lifetime_contract.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool
from dbapi_pool.compat import eventlet_db_pool as db_pool

from .support import Database, driver_params, scalar

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated")


def count_rows(conn: Any, table: str) -> int:
    """Count the rows of ``table`` as ``conn``'s own session sees them (uncommitted too)."""
    return int(scalar(conn, f"SELECT count(*) FROM {table}"))


# -- ConnectionPool --------------------------------------------------------------------------


def test_a_kept_cursor_cannot_write_into_the_next_borrowers_session(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool(max_size=1)
    first = pool.get()
    session = dbenv.session_id(first)
    kept = first.cursor()
    kept.execute(f"SELECT count(*) FROM {table}")
    kept.fetchall()
    pool.put(first)
    second = pool.get()
    assert dbenv.session_id(second) == session  # the same session, lent again
    with pytest.raises(dbenv.module.Error):
        kept.execute(f"INSERT INTO {table} VALUES (1)")
    assert count_rows(second, table) == 0
    pool.put(second)


def test_a_cursor_left_with_unread_rows_does_not_trouble_the_next_borrower(
    dbenv: Database,
) -> None:
    pool = dbenv.make_pool(max_size=1)
    first = pool.get()
    kept = first.cursor()
    kept.execute("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3")
    kept.fetchone()  # two rows left unread (MySQL drivers read them on close)
    pool.put(first)
    with pool.connection() as second:
        assert scalar(second, "SELECT 42") == 42
    # (Rows the driver had already read may still come out of the kept cursor: that
    # touches no session.)


@pytest.mark.parametrize("shortcut", ["execute", "executemany", "executescript"])
def test_sqlite3_shortcut_cursors_are_closed_on_return(tmp_path: Any, shortcut: str) -> None:
    from dbapi_pool import ConnectionPool

    with ConnectionPool(sqlite3, database=str(tmp_path / "s.db"), max_size=1) as pool:
        with pool.connection() as conn:
            conn.execute("CREATE TABLE t (v integer)")
        conn = pool.get()
        if shortcut == "execute":
            kept = conn.execute("SELECT count(*) FROM t")
        elif shortcut == "executemany":
            kept = conn.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
        else:
            kept = conn.executescript("SELECT 1;")
        pool.put(conn)  # rolls the inserts back
        with pool.connection() as second:
            with pytest.raises(sqlite3.ProgrammingError, match="closed cursor"):
                kept.execute("INSERT INTO t VALUES (3)")
            assert count_rows(second, "t") == 0


@pytest.mark.parametrize("dbenv", driver_params("psycopg"), indirect=True)
def test_psycopg_execute_shortcut_cursor_is_closed_on_return(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool(max_size=1)
    conn = pool.get()
    kept = conn.execute(f"SELECT count(*) FROM {table}")
    pool.put(conn)
    with pool.connection() as second:
        with pytest.raises(dbenv.module.InterfaceError, match="closed"):
            kept.execute(f"INSERT INTO {table} VALUES (1)")
        assert count_rows(second, table) == 0


# -- AsyncConnectionPool ---------------------------------------------------------------------


def test_async_a_kept_cursor_cannot_write_into_the_next_borrowers_session(
    dbenv: Database,
) -> None:
    table = dbenv.create_table()
    insert = f"INSERT INTO {table} VALUES (1)"

    async def main() -> tuple[Any, Any, int]:
        kwargs = dbenv.connect_kwargs(dbenv.new_marker())
        async with AsyncConnectionPool(dbenv.module, max_size=1, **kwargs) as pool:
            first = await pool.get()
            raw = first.raw
            kept = first.cursor()
            await kept.execute(f"SELECT count(*) FROM {table}")
            await kept.fetchall()
            await pool.put(first)
            second = await pool.get()
            assert second.raw is raw  # the same session, lent again
            outcomes = []
            for attempt in (kept.execute(insert), second.run(kept.raw.execute, insert)):
                try:
                    await attempt
                    outcomes.append(None)
                except Exception as exc:
                    outcomes.append(exc)
            rows = await (await second.execute(f"SELECT count(*) FROM {table}")).fetchall()
            await pool.put(second)
            return outcomes[0], outcomes[1], int(rows[0][0])

    wrapped, raw_error, rows = asyncio.run(main())
    assert type(wrapped).__name__ == "ConnectionReleased"  # the async cursor refuses
    assert isinstance(raw_error, dbenv.module.Error)  # and the driver's cursor is closed
    assert rows == 0


# -- the eventlet drop-in --------------------------------------------------------------------


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "MySQLdb"), indirect=True)
@pytest.mark.parametrize("kind", ["raw", "tpooled"])
def test_eventlet_drop_in_closes_a_kept_cursor(dbenv: Database, kind: str) -> None:
    table = dbenv.create_table()
    cls = db_pool.RawConnectionPool if kind == "raw" else db_pool.TpooledConnectionPool
    pool = cls(dbenv.module, max_size=1, **dbenv.connect_kwargs(dbenv.new_marker()))
    dbenv.defer(pool.close)
    first = pool.get()
    base = first._base
    kept = first.cursor()
    kept.execute(f"SELECT count(*) FROM {table}")
    kept.fetchall()
    pool.put(first)
    second = pool.get()
    assert second._base is base  # the same session, lent again
    with pytest.raises(dbenv.module.Error):
        kept.execute(f"INSERT INTO {table} VALUES (1)")
    assert count_rows(second, table) == 0
    pool.put(second)


@pytest.mark.parametrize("dbenv", driver_params("psycopg2"), indirect=True)
def test_eventlet_drop_in_leaves_the_cursors_of_an_unwrapped_connection_open(
    dbenv: Database,
) -> None:
    pool = db_pool.RawConnectionPool(dbenv.module, **dbenv.connect_kwargs(dbenv.new_marker()))
    dbenv.defer(pool.close)
    wrapper = pool.get()
    cursor = wrapper.cursor()
    raw = pool._unwrap_connection(wrapper)  # the caller keeps the connection
    cursor.execute("SELECT 1")
    assert cursor.fetchone()[0] == 1
    pool.put(raw)
