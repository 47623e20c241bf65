"""What put() does with the cursors of a checkout, on the fake driver (issue 11, defect 4).

The rules shared by every flavour are in tests/contract/test_cursor_lifetime_contract.py;
these are the threaded pool's details. Real drivers: tests/integration/test_cursor_lifetime.py.
"""

from __future__ import annotations

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.testing.fakedb import FakeDatabase, InterfaceError, OperationalError


def failing_close() -> None:
    # As a psycopg2 named cursor's close() in an aborted transaction (CLOSE fails).
    raise OperationalError("fakedb: cannot close the cursor")


def test_a_cursor_that_cannot_be_closed_takes_its_connection_with_it(db: FakeDatabase) -> None:
    pool = ConnectionPool(db, max_size=1)
    conn = pool.get()
    first_raw = conn.raw
    kept = conn.cursor()
    kept.close = failing_close  # type: ignore[method-assign]
    pool.put(conn)
    assert first_raw.closed  # else the cursor could still reach the next borrower
    stats = pool.stats()
    assert (stats.size, stats.closes["reset_failed"]) == (0, 1)
    with pool.connection() as again:
        assert again.raw is not first_raw


def test_every_cursor_of_a_checkout_is_closed_even_the_ones_already_closed(
    db: FakeDatabase,
) -> None:
    pool = ConnectionPool(db, max_size=1)
    conn = pool.get()
    cursors = [conn.cursor() for _ in range(3)]
    cursors[1].close()
    pool.put(conn)
    assert [cursor.closed for cursor in cursors] == [True, True, True]
    assert pool.stats().closes["reset_failed"] == 0


def test_cursors_are_closed_before_the_rollback_on_return(db: FakeDatabase) -> None:
    seen: list[bool] = []

    def reset(raw: object) -> None:
        seen.append(kept.closed)

    pool = ConnectionPool(db, max_size=1, reset=reset)
    conn = pool.get()
    kept = conn.cursor()
    pool.put(conn)
    assert seen == [True]


def test_a_retired_connection_is_closed_with_its_cursors_unclosed(db: FakeDatabase) -> None:
    # Closing the connection ends its cursors: no cursor close (nor its I/O) first.
    pool = ConnectionPool(db, max_size=1, max_age=0)
    conn = pool.get()
    kept = conn.cursor()
    pool.put(conn)
    assert db.connections[0].closed and not kept.closed
    with pytest.raises(InterfaceError, match="connection already closed"):
        kept.execute("SELECT 1")


def test_a_driver_without_shortcuts_shows_none_on_the_proxy(db: FakeDatabase) -> None:
    pool = ConnectionPool(db)
    with pool.connection() as conn:
        assert not hasattr(conn, "execute")  # fakedb connections have no execute()
