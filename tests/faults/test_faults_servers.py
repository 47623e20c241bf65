"""Faults both private servers share, each scenario written once and run on PostgreSQL
(psycopg2, psycopg, pg8000) and MariaDB (PyMySQL, mysqlclient) through the ``db`` adapter:
restarts, killed sessions, server idle timeouts, cancelled statements, logins that complete
late, outages, and connections returned mid-transaction or with session state (matrix F1-F5,
F9, F15, F16).

What the pool does today (read from the code, asserted here): a connection is checked
before it is lent (a zero-timeout ``poll()`` on its socket at every checkout, then a ping
if the socket is readable), so a session that died while idle is replaced inside the same
``get()`` (``closes['failed_check']``) and the caller sees no error; with
``check_idle_after=None`` it is trusted and lent as is, so its borrower gets the driver's
error, the connection is closed on return (``closes['broken']``) and every connection
opened before it is pinged before its next checkout (so one restart costs at most one
failed statement per pool). While connects fail, callers fail fast with the driver's own
last error (``stats.unreachable``) and connects back off.

Every test counts its own sessions on the server (``db.sessions()``): by
``application_name`` on PostgreSQL, by a login account of the test's own on MariaDB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.errors import ConnectTimeout

from .adapters import ServerAdapter, on_servers
from .support import (
    BackgroundCall,
    attempts_until_ok,
    elapsed,
    query_ok,
    scalar,
    serves,
    wait_until,
)

PoolFactory = Callable[..., ConnectionPool]

#: ``check_idle_after`` values: 0 probes every checkout, None trusts idle connections.
CHECKS = [pytest.param(0.0, id="probe"), pytest.param(None, id="trust")]


# -- F1: server restart ----------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS)
@on_servers()
def test_f1_restart_costs_at_most_one_failed_statement(
    db: ServerAdapter, check: float | None, make_pool: PoolFactory
) -> None:
    """After a fast restart with two stale idle connections, the pool recovers by itself.

    probe: both fail their check before checkout and are replaced inside the same get();
    no caller sees an error. trust: the first borrower's statement fails with the driver's
    error, that connection is closed as broken, and its elder sibling is pinged (and
    replaced) before the next checkout, so the next caller succeeds. Either way the server
    then holds one session of the pool, the one it lends (a new one: the restart ended the
    old ones).
    """
    pool = db.pool(make_pool, max_size=3, check_idle_after=check)
    db.fill_idle(pool, 2)
    db.restart()
    failures = attempts_until_ok(pool, db.module.Error, limit=6)
    closes = pool.stats().closes
    if check is None:
        assert (failures, closes["broken"], closes["failed_check"]) == (1, 1, 1)
    else:
        assert (failures, closes["broken"], closes["failed_check"]) == (0, 0, 2)
    assert pool.stats().size == 1
    with pool.connection() as conn:
        session = db.session_of(conn)
    assert db.sessions() == {session}


# -- F2: session killed ----------------------------------------------------------------


@on_servers()
def test_f2_killed_idle_session_is_replaced_inside_get(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """A session killed on the server (pg_terminate_backend, KILL) while idle past
    check_idle_after: its socket turns readable, the check before checkout fails, and
    get() hands out a fresh session."""
    pool = db.pool(make_pool, max_size=2, check_idle_after=0.1)
    (old,) = db.fill_idle(pool, 1)
    assert db.sessions() == {old}
    db.kill(old)
    assert db.sessions() == set()
    time.sleep(0.2)  # idle past check_idle_after
    with pool.connection(timeout=15) as conn:
        new = db.session_of(conn)
    assert new != old
    stats = pool.stats()
    assert stats.closes["failed_check"] == 1
    assert (stats.size, stats.idle, stats.in_use) == (1, 1, 0)
    assert db.sessions() == {new}


@on_servers()
def test_f2_session_killed_while_checked_out_fails_the_caller_and_is_discarded(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """A session killed while lent: the borrower's statement fails with the driver's error
    (PostgreSQL: the session ended; MariaDB: 2013/2006), the ``with`` block returns the
    connection, the pool closes it as broken (never lends it again) and the next borrower
    gets a new session."""
    pool = db.pool(make_pool, max_size=1)
    with pytest.raises(db.dead_session_errors()):
        with pool.connection(timeout=15) as conn:
            old = db.session_of(conn)
            db.kill(old)
            scalar(conn, "SELECT 1")
    assert pool.stats().closes["broken"] == 1
    assert pool.stats().size == 0
    with pool.connection(timeout=15) as conn:
        assert db.session_of(conn) != old


# -- F3: server idle timeouts ----------------------------------------------------------


@on_servers()
def test_f3_server_idle_timeout_is_caught_before_checkout(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """The server ends sessions idle for a second or less (idle_session_timeout,
    wait_timeout), well below the pool's max_idle: the pool sees it before lending the
    connection and opens a new one, with no error for the caller."""
    pool = db.pool(
        make_pool, max_size=2, max_idle=60, check_idle_after=0.1, connect=db.short_idle_timeout()
    )
    db.fill_idle(pool, 1)
    assert wait_until(lambda: db.sessions() == set(), 15)
    time.sleep(0.2)  # idle past check_idle_after
    assert attempts_until_ok(pool, db.module.Error, limit=3) == 0
    assert pool.stats().closes["failed_check"] == 1


# -- F4: cancelled statements ----------------------------------------------------------


@on_servers()
def test_f4_cancelled_statement_keeps_its_connection(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """A long statement cancelled on the server (pg_cancel_backend, KILL QUERY: error
    1317): the caller gets the error, the session is rolled back on return and lent again
    (same session id), nothing is closed."""
    pool = db.pool(make_pool, max_size=1)
    conn = pool.get(timeout=15)
    session = db.session_of(conn)
    call = BackgroundCall(scalar, conn, db.sleep_sql)
    assert wait_until(lambda: db.running(session), 15)
    db.cancel(session)
    call.join(20)
    assert db.is_cancelled(call.error), repr(call.error)
    pool.put(conn)
    with pool.connection() as again:
        assert db.session_of(again) == session
    assert pool.stats().closed_total == 0
    assert db.sessions() == {session}


# -- F5: logins that complete late -----------------------------------------------------


@on_servers(pg=("psycopg2",))
def test_f5_login_that_completes_late_is_closed_and_frees_the_slot(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """Logins stall 3 s (pre_auth_delay; init_connect='DO SLEEP(3)' for an account
    without SUPER) and the driver waits longer than the pool: get() raises ConnectTimeout
    at the pool's bound (about 1 s), the connect succeeds later, and the pool closes that
    session (closes['late_connect']) and frees the slot."""
    pool = db.pool(make_pool, max_size=1, connect_timeout=1, **db.late_login_settings())
    db.stall_logins(3)
    with elapsed() as took, pytest.raises(ConnectTimeout):
        pool.get(timeout=30)
    assert took[0] < 2.5  # the pool gave up; the driver would have waited about 3 s
    assert pool.stats().size == 1  # still connecting, still counted against max_size
    assert wait_until(lambda: pool.stats().closes["late_connect"] == 1, 20)
    assert pool.stats().size == 0
    assert wait_until(lambda: db.sessions() == set(), 15)
    db.stall_logins(0)
    assert query_ok(pool) == 1


# -- F9: server down -------------------------------------------------------------------


@on_servers()
def test_f9_server_down_get_fails_fast_with_the_driver_error_then_recovers(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """With the server stopped, get() raises the driver's own error for a refused connect
    well within its timeout: the first caller's connect is refused, later callers fail
    fast without a connect of their own while the pool backs off. Once the server is
    back, the pool serves again by itself."""
    pool = db.pool(make_pool, max_size=2, connect_timeout=3)
    db.stop()
    try:
        for _ in range(5):
            with elapsed() as took, pytest.raises(db.module.Error) as raised:
                pool.get(timeout=10)
            assert db.is_refused(raised.value), repr(raised.value)
            assert took[0] < 10
        stats = pool.stats()
        assert stats.connect_failures >= 1
        assert stats.connect_failures + stats.unreachable == 5
        assert stats.unreachable >= 1
        assert (stats.size, stats.connecting) == (0, 0)
    finally:
        db.start()
    assert wait_until(lambda: serves(pool, db.module.Error), 30)


# -- F15: session state across checkouts -----------------------------------------------


def discard_all(conn: Any) -> None:
    """Reset a PostgreSQL session fully (rollback, then DISCARD ALL outside a transaction)."""
    conn.rollback()
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("DISCARD ALL")
        cur.close()
    finally:
        conn.autocommit = False


def reset_clears_session_state(db: ServerAdapter, make_pool: PoolFactory, reset: Any) -> None:
    """Leave a setting and a temporary table on a session; check the next borrower of the
    same session finds neither."""
    pool = db.pool(make_pool, max_size=1, reset=reset)
    with pool.connection() as conn:
        session = db.session_of(conn)
        db.leave_session_state(conn)
    with pool.connection() as conn:
        assert db.session_of(conn) == session
        assert db.session_state_is_clean(conn)


# mysqlclient is left out: its driver profile has no full reset (reset='full' is refused).
@on_servers(mariadb=("pymysql",))
def test_f15_full_reset_clears_session_state(db: ServerAdapter, make_pool: PoolFactory) -> None:
    """reset='full' (the profile's DISCARD ALL, or COM_RESET_CONNECTION) clears settings
    or user variables, and temporary tables, between checkouts of the same session."""
    reset_clears_session_state(db, make_pool, "full")


@on_servers(mariadb=())
def test_f15_reset_hook_clears_session_state(db: ServerAdapter, make_pool: PoolFactory) -> None:
    """A reset= hook doing DISCARD ALL clears settings and temporary tables between
    checkouts of the same session."""
    reset_clears_session_state(db, make_pool, discard_all)


# -- F16: connections returned mid-transaction -----------------------------------------


@on_servers()
def test_f16_returned_mid_transaction_is_rolled_back_and_kept(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """An uncommitted INSERT left by a borrower is rolled back on return; the session is
    reused, idle outside any transaction, and the row never existed."""
    table = db.create_table()
    pool = db.pool(make_pool, max_size=1)
    conn = pool.get(timeout=15)
    session = db.session_of(conn)
    conn.cursor().execute(f"INSERT INTO {table} VALUES (1)")
    pool.put(conn)
    assert db.rows_in(table) == 0
    assert wait_until(lambda: db.idle(session), 10)
    with pool.connection() as again:
        assert db.session_of(again) == session
        assert scalar(again, f"SELECT count(*) FROM {table}") == 0
    assert pool.stats().closed_total == 0
