"""Checks before checkout, dead connections, leaks, full reset and rotating credentials.

On the fake driver with a profile that can ping and tell a dead connection, and on the
real servers where the behaviour depends on the driver (a killed backend, DISCARD ALL).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from dbapi_pool import ConnectionPool, DriverProfile, register_profile
from dbapi_pool._drivers.base import select_one
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError

register_profile(
    DriverProfile(
        name="fakedb_checked",
        ping=select_one,
        is_broken=lambda conn: bool(conn.dead),
        is_disconnect=lambda exc: "server closed" in str(exc),
    )
)


def checked_db(**knobs: Any) -> FakeDatabase:
    return FakeDatabase(name="fakedb_checked", **knobs)


def pings(db: FakeDatabase) -> int:
    return sum(1 for _, method, args in db.log if method == "execute" and args[0] == "SELECT 1")


def test_dead_idle_connection_is_replaced_within_the_same_get() -> None:
    db = checked_db()
    with ConnectionPool(db, max_size=1) as pool:
        pool.put(pool.get())
        db.connections[0].kill()
        conn = pool.get(timeout=1)
        assert conn.raw is db.connections[1]
        assert db.connections[0].closed
        assert pool.stats().closes["failed_check"] == 1
        pool.put(conn)


def test_connection_idle_longer_than_check_idle_after_is_pinged() -> None:
    db = checked_db()
    with ConnectionPool(db, check_idle_after=0.05) as pool:
        pool.put(pool.get())
        pool.put(pool.get())  # used a moment ago: no ping (the bypass window)
        assert pings(db) == 0
        time.sleep(0.06)
        pool.put(pool.get())
        assert pings(db) == 1


def test_pre_ping_pings_every_checkout() -> None:
    db = checked_db()
    with ConnectionPool(db, pre_ping=True) as pool:
        for _ in range(3):
            pool.put(pool.get())
        assert pings(db) == 2  # the first checkout got a brand-new connection


def test_failed_ping_replaces_the_connection() -> None:
    db = checked_db()
    with ConnectionPool(db, pre_ping=True, max_size=1) as pool:
        pool.put(pool.get())
        stale = db.connections[0]

        def refusing_cursor() -> Any:
            raise OperationalError("fakedb: server closed the connection")

        stale.cursor = refusing_cursor  # type: ignore[method-assign]
        conn = pool.get(timeout=1)
        assert conn.raw is db.connections[1]
        assert stale.closed
        pool.put(conn)


def test_disconnect_error_closes_the_connection_and_rechecks_its_elders() -> None:
    db = checked_db()
    with ConnectionPool(db, max_size=2, check_idle_after=None) as pool:
        elder, victim = pool.get(), pool.get()
        pool.put(elder)
        with pytest.raises(OperationalError), pool.connection() as conn:
            assert conn.raw is db.connections[0]  # the elder (newest idle first)
            raise OperationalError("fakedb: server closed the connection")
        assert db.connections[0].closed
        assert pool.stats().closes["broken"] == 1
        pool.put(victim)  # opened before the failure: pinged before its next checkout
        before = pings(db)
        pool.put(pool.get())
        assert pings(db) == before + 1


def test_ordinary_error_keeps_the_connection() -> None:
    db = checked_db()
    with ConnectionPool(db) as pool:
        with pytest.raises(ValueError), pool.connection():
            raise ValueError("not the database's fault")
        assert pool.stats().idle == 1 and not db.connections[0].closed


def test_leak_timeout_warns_with_the_borrowers_stack(caplog: pytest.LogCaptureFixture) -> None:
    db = FakeDatabase()
    with caplog.at_level(logging.WARNING, logger="dbapi_pool"):
        with ConnectionPool(db, leak_timeout=0.05, name="leaky") as pool:
            conn = pool.get()  # this line is the borrower
            deadline = time.monotonic() + 5
            while pool.stats().leaks == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            pool.put(conn)
    assert pool.stats().leaks == 1
    assert "'leaky': a connection has been checked out for" in caplog.text
    assert "test_leak_timeout_warns_with_the_borrowers_stack" in caplog.text


def test_full_reset_needs_a_driver_that_has_one() -> None:
    with pytest.raises(ValueError, match="reset='full' is not available for fakedb"):
        ConnectionPool(FakeDatabase(), reset="full")


def test_connect_args_are_read_for_each_new_connection() -> None:
    db = FakeDatabase()
    tokens = iter(["first", "second"])
    with ConnectionPool(
        db, max_size=2, host="h", connect_args=lambda: {"password": next(tokens)}
    ) as pool:
        a, b = pool.get(), pool.get()
        pool.put(a)
        pool.put(b)
    assert [c.kwargs["password"] for c in db.connections] == ["first", "second"]
    assert all(c.kwargs["host"] == "h" for c in db.connections)


# -- real servers --------------------------------------------------------------------------


@pytest.mark.postgres
def test_backend_killed_while_idle_is_replaced_without_an_error() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    monitor = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    monitor.autocommit = True
    pool = ConnectionPool(
        psycopg2, host="127.0.0.1", user="postgres", dbname="test", check_idle_after=0.1
    )
    with pool:
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
        pool.put(conn)
        monitor.cursor().execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.3)  # past check_idle_after: the socket probe runs (and sees the EOF)
        conn = pool.get()  # no error: the socket probe saw it, a new one was opened
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        assert cur.fetchone()[0] != pid
        pool.put(conn)
        assert pool.stats().closes["failed_check"] == 1
    monitor.close()


@pytest.mark.postgres
def test_full_reset_discards_postgres_session_state() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    pool = ConnectionPool(
        psycopg2, host="127.0.0.1", user="postgres", dbname="test", max_size=1, reset="full"
    )
    with pool:
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE leftover (x int)")
        cur.execute("SET application_name = 'previous borrower'")
        conn.commit()
        cur.execute("SELECT pg_backend_pid()")
        (pid,) = cur.fetchone()
        pool.put(conn)
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid(), current_setting('application_name')")
        assert cur.fetchone() == (pid, "")  # same session, state gone
        cur.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'leftover'")
        assert cur.fetchone()[0] == 0
        pool.put(conn)


@pytest.mark.mariadb
def test_full_reset_clears_mariadb_user_variables() -> None:
    pymysql = pytest.importorskip("pymysql")
    pool = ConnectionPool(
        pymysql, host="127.0.0.1", user="root", password="", database="test", reset="full"
    )
    with pool:
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("SET @secret = 'previous borrower'")
        cur.execute("SELECT CONNECTION_ID()")
        (session,) = cur.fetchone()
        pool.put(conn)
        conn = pool.get()
        cur = conn.cursor()
        cur.execute("SELECT CONNECTION_ID(), @secret")
        assert cur.fetchone() == (session, None)
        pool.put(conn)
