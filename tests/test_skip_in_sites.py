"""dbapi_pool.holders.skip_in_sites: a layer's frames left out of a holder's site."""

from __future__ import annotations

import functools
from typing import Any

from dbapi_pool import ConnectionPool, PooledConnection
from dbapi_pool.holders import skip_in_sites
from dbapi_pool.testing.fakedb import FakeDatabase


def logged(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        return fn(*args)

    return wrapper


@logged
def borrow(pool: ConnectionPool) -> PooledConnection:
    return pool.get()


def lend_unskipped(pool: ConnectionPool) -> PooledConnection:
    return pool.get()


skip_in_sites(borrow)


def test_a_skipped_layer_and_its_decorator_leave_the_callers_line() -> None:
    pool = ConnectionPool(FakeDatabase(), name="orders")
    conn = borrow(pool)
    [holder] = pool.holders()
    assert holder.site.startswith(__file__)
    assert holder.site.endswith(" in test_a_skipped_layer_and_its_decorator_leave_the_callers_line")
    pool.put(conn)
    pool.close()


def test_a_layer_not_skipped_is_the_site() -> None:
    pool = ConnectionPool(FakeDatabase(), name="orders")
    conn = lend_unskipped(pool)
    [holder] = pool.holders()
    assert holder.site.endswith(" in lend_unskipped")
    pool.put(conn)
    pool.close()
