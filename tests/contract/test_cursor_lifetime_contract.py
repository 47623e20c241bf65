"""A cursor lives no longer than its checkout, on every flavour (issue 11, defect 4).

After ``put()`` the proxy refuses every use; a cursor taken from it before must not run a
statement on the connection either: by then it may be lent to the next borrower. Run by
this folder's conftest on OS threads and asyncio, and by tests/green/run_contract.py on
gevent and eventlet (offloaded when unpatched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionReleased
from dbapi_pool.testing.fakedb import FakeCursor, FakeDatabase, InterfaceError

MakePool = Callable[..., Any]


def driver_cursor(cursor: Any) -> FakeCursor:
    """Return the fakedb cursor behind what a flavour handed out."""
    inner = getattr(cursor, "inner", cursor)  # the asyncio facade's
    raw = getattr(inner, "raw", inner)  # an offloaded or async cursor's
    assert isinstance(raw, FakeCursor)
    return raw


def test_a_cursor_kept_after_put_cannot_reach_the_next_borrower(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=1)
    first = pool.get()
    raw = first.raw
    kept = first.cursor()
    kept.execute("SELECT 1")
    pool.put(first)
    second = pool.get()
    assert second.raw is raw  # the same session, now the second borrower's
    calls = len(db.log)
    with pytest.raises((InterfaceError, ConnectionReleased)):
        kept.execute("SELECT 1")
    assert db.log[calls:] == []  # nothing reached the session
    pool.put(second)


def test_the_drivers_cursor_is_closed_when_its_connection_goes_back(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db)
    conn = pool.get()
    cursors = [conn.cursor(), conn.cursor()]
    cursors[0].execute("SELECT 1")
    pool.put(conn)
    assert [driver_cursor(cursor).closed for cursor in cursors] == [True, True]
    with pytest.raises(InterfaceError, match="cursor already closed"):
        driver_cursor(cursors[0]).execute("SELECT 1")


def test_a_cursor_closed_by_its_caller_leaves_the_connection_reusable(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=1)
    with pool.connection() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchone()
    with pool.connection() as conn:
        again = conn.cursor()
        again.execute("SELECT 1")
        assert again.fetchone() == (1,)
    stats = pool.stats()
    assert (stats.size, db.connects, sum(stats.closes.values())) == (1, 1, 0)
