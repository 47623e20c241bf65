"""The one-statement shortcuts (``pool.execute``, ``fetchone``, ``fetchall``, ``fetchval``)
of both front-ends, on the fake driver: each is a whole checkout (commit at the end, rollback
on an error, the connection back in the pool), its cursor closed, plain data returned."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool
from dbapi_pool._shortcuts import run_statement
from dbapi_pool.testing.fakedb import FakeConnection, FakeCursor, FakeDatabase, ProgrammingError

ROWS = {"SELECT a, b FROM t": [(1, "x"), (2, "y")], "SELECT nothing": []}


def calls(db: FakeDatabase, serial: int = 1) -> list[str]:
    """Name what connection ``serial`` did (cursor, execute, commit...), in order."""
    return [entry[1] for entry in db.log if entry[0] == serial and entry[1] != "connect"]


class Recording:
    """A driver connection that keeps the cursors it made (to see them closed)."""

    def __init__(self, conn: FakeConnection, fail_close: bool = False) -> None:
        self.conn = conn
        self.made: list[FakeCursor] = []
        self.fail_close = fail_close

    def cursor(self) -> FakeCursor:
        cursor = self.conn.cursor()
        if self.fail_close:

            def refuse() -> None:
                raise RuntimeError("close failed too")

            cursor.close = refuse  # type: ignore[method-assign]
        self.made.append(cursor)
        return cursor


# -- the job both front-ends run ------------------------------------------------------------


def test_run_statement_closes_its_cursor() -> None:
    conn = Recording(FakeDatabase(results=ROWS).connect())
    assert (
        run_statement(conn, "SELECT a, b FROM t", None, lambda c: c.fetchall())
        == ROWS["SELECT a, b FROM t"]
    )
    [cursor] = conn.made
    assert cursor.closed


def test_run_statement_closes_its_cursor_after_an_error() -> None:
    conn = Recording(FakeDatabase().connect())
    with pytest.raises(ProgrammingError):
        run_statement(conn, "FAIL", None, lambda c: c.fetchall())
    assert conn.made[0].closed


def test_run_statement_reports_the_statement_error_not_the_close_error() -> None:
    conn = Recording(FakeDatabase().connect(), fail_close=True)
    with pytest.raises(ProgrammingError, match="statement failed"):
        run_statement(conn, "FAIL", None, lambda c: c.fetchall())


def test_run_statement_passes_params_only_when_given() -> None:
    db = FakeDatabase()
    conn = db.connect()
    run_statement(conn, "SELECT 1", None, lambda c: None)
    run_statement(conn, "SELECT ?", (5,), lambda c: None)
    executed = [entry[2] for entry in db.log if entry[1] == "execute"]
    assert executed == [("SELECT 1", None), ("SELECT ?", (5,))]


# -- ConnectionPool ---------------------------------------------------------------------------


def test_execute_commits_and_returns_the_rowcount(make_pool: Callable[..., Any]) -> None:
    db = FakeDatabase()
    pool = make_pool(db)
    assert pool.execute("INSERT INTO t VALUES (?)", (1,)) == 1
    assert calls(db)[:3] == ["cursor", "execute", "commit"]  # then the reset on return
    stats = pool.stats()
    assert (stats.in_use, stats.idle, stats.checkouts) == (0, 1, 1)


def test_fetches_return_plain_data(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(FakeDatabase(results=ROWS))
    assert pool.fetchall("SELECT a, b FROM t") == [(1, "x"), (2, "y")]
    assert pool.fetchone("SELECT a, b FROM t") == (1, "x")
    assert pool.fetchval("SELECT a, b FROM t") == 1
    assert pool.fetchone("SELECT nothing") is None
    assert pool.fetchval("SELECT nothing") is None
    assert pool.fetchall("SELECT nothing") == []
    assert pool.stats().connects == 1  # one connection served them all


def test_fetchval_takes_the_first_value_of_a_dict_row(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(FakeDatabase(results={"SELECT d": [{"n": 7, "m": 8}]}))  # type: ignore[dict-item]
    assert pool.fetchval("SELECT d") == 7


def test_an_error_propagates_as_the_drivers_and_the_connection_goes_back_rolled_back(
    make_pool: Callable[..., Any],
) -> None:
    db = FakeDatabase()
    pool = make_pool(db)
    with pytest.raises(ProgrammingError):
        pool.fetchall("FAIL")
    assert "commit" not in calls(db) and "rollback" in calls(db)
    stats = pool.stats()
    assert (stats.in_use, stats.idle) == (0, 1)
    assert pool.fetchval("SELECT 1") == 1


def test_a_running_shortcut_shows_in_holders_with_its_tag_and_the_callers_line(
    make_pool: Callable[..., Any],
) -> None:
    pool = make_pool(FakeDatabase(), max_size=1)
    pool.fetchval("SELECT 1")  # an idle connection: the next checkout takes get()'s quick path
    runner = threading.Thread(target=lambda: pool.execute("SLEEP 0.5", tag="report"))
    runner.start()
    try:
        deadline = time.monotonic() + 5
        while not pool.holders() and time.monotonic() < deadline:
            time.sleep(0.01)
        [holder] = pool.holders()
    finally:
        runner.join()
    assert holder.tag == "report"
    assert holder.site.startswith(__file__)  # the caller, not the pool's own frames


# -- AsyncConnectionPool ----------------------------------------------------------------------


def run_async(db: FakeDatabase, job: Callable[[AsyncConnectionPool], Any], **settings: Any) -> Any:
    async def main() -> Any:
        async with AsyncConnectionPool(db, name="shortcuts", **settings) as pool:
            return await job(pool), pool.stats()

    return asyncio.run(main())


def test_async_execute_commits_and_returns_the_rowcount() -> None:
    db = FakeDatabase()
    rowcount, stats = run_async(db, lambda pool: pool.execute("INSERT INTO t VALUES (?)", (1,)))
    assert rowcount == 1
    assert calls(db)[:3] == ["cursor", "execute", "commit"]  # then the reset on return
    assert (stats.in_use, stats.idle) == (0, 1)


def test_async_fetches_return_plain_data() -> None:
    async def job(pool: AsyncConnectionPool) -> Any:
        return (
            await pool.fetchall("SELECT a, b FROM t"),
            await pool.fetchone("SELECT a, b FROM t"),
            await pool.fetchval("SELECT a, b FROM t"),
            await pool.fetchval("SELECT nothing"),
            await pool.fetchone("SELECT nothing"),
        )

    got, stats = run_async(FakeDatabase(results=ROWS), job)
    assert got == ([(1, "x"), (2, "y")], (1, "x"), 1, None, None)
    assert stats.connects == 1


def test_async_error_propagates_and_the_connection_goes_back_rolled_back() -> None:
    db = FakeDatabase()

    async def job(pool: AsyncConnectionPool) -> Any:
        with pytest.raises(ProgrammingError):
            await pool.fetchone("FAIL")
        return await pool.fetchval("SELECT 1")

    one, stats = run_async(db, job)
    assert one == 1 and "rollback" in calls(db)
    assert (stats.in_use, stats.idle, stats.connects) == (0, 1, 1)


def test_async_running_shortcut_shows_in_holders_with_its_tag_and_the_callers_line() -> None:
    async def report(pool: AsyncConnectionPool) -> int:
        return await pool.execute("SLEEP 0.3", tag="report")

    async def job(pool: AsyncConnectionPool) -> Any:
        running = asyncio.ensure_future(report(pool))
        for _ in range(500):
            if pool.holders():
                break
            await asyncio.sleep(0.01)
        holders = pool.holders()
        await running
        return holders

    [holder], _ = run_async(FakeDatabase(), job)
    assert holder.tag == "report"
    assert holder.site.startswith(__file__)  # the caller, not the pool's own frames
