"""ConnectionPool with each real driver against its real server (or a sqlite file)."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest

from dbapi_pool.errors import ConnectionReleased

from .support import Database, calls_beside_a_gil_waiter, driver_params, scalar, wait_until


class Boom(Exception):
    """Raised by a test inside a ``with pool.connection()`` block."""


def test_classic_get_put(dbenv: Database) -> None:
    pool = dbenv.make_pool()
    conn = pool.get()
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    finally:
        pool.put(conn)
    stats = pool.stats()
    assert (stats.checkouts, stats.connects, stats.in_use, stats.idle) == (1, 1, 0, 1)


def test_put_rolls_back_and_the_session_is_reused(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool(max_size=1)
    conn = pool.get()
    session = dbenv.session_id(conn)
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
    cur.close()
    assert scalar(conn, f"SELECT count(*) FROM {table}") == 1  # its own uncommitted row
    assert dbenv.wait_in_transaction(session, True)
    pool.put(conn)  # no commit

    # The reset happened at put(), not lazily at the next get().
    assert dbenv.wait_in_transaction(session, False)
    assert dbenv.committed_rows(table) == 0

    again = pool.get()
    try:
        assert dbenv.session_id(again) == session  # the very same server session
        if dbenv.server == "sqlite":
            assert again.raw is session
        assert scalar(again, f"SELECT count(*) FROM {table}") == 0
    finally:
        pool.put(again)
    assert pool.stats().connects == 1


def test_commit_is_visible_from_another_pooled_connection(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool(max_size=2)
    writer = pool.get()
    reader = pool.get()
    try:
        assert dbenv.session_id(writer) != dbenv.session_id(reader)
        cur = writer.cursor()
        cur.execute(f"INSERT INTO {table} (v) VALUES (42)")
        cur.close()
        writer.commit()
        assert scalar(reader, f"SELECT v FROM {table}") == 42
        assert pool.stats().in_use == 2
    finally:
        pool.put(writer)
        pool.put(reader)
    assert pool.stats().idle == 2


def test_returned_proxy_refuses_use(dbenv: Database) -> None:
    pool = dbenv.make_pool()
    conn = pool.get()
    assert scalar(conn, "SELECT 1") == 1
    pool.put(conn)
    assert conn.released
    with pytest.raises(ConnectionReleased):
        conn.cursor()
    with pytest.raises(ConnectionReleased):
        conn.commit()
    with pytest.raises(ConnectionReleased):
        conn.rollback()
    with pytest.raises(ConnectionReleased):
        _ = conn.raw
    with pytest.raises(ConnectionReleased):
        conn.some_attribute = 1
    before = pool.stats()
    pool.put(conn)  # a second put is harmless
    conn.close()  # and so is close() on a returned proxy
    assert pool.stats() == before
    assert before.idle == 1


@pytest.mark.parametrize("setting", ["max_idle", "max_age"])
def test_zero_max_idle_or_max_age_closes_on_return(dbenv: Database, setting: str) -> None:
    pool = dbenv.make_pool(**{setting: 0})
    conn = pool.get()
    session = dbenv.session_id(conn)
    assert dbenv.is_alive(session)
    pool.put(conn)
    assert dbenv.wait_gone([session]), f"session {session!r} still open after put()"
    stats = pool.stats()
    assert stats.size == 0
    assert stats.idle == 0
    assert stats.closes["close_on_return"] == 1

    again = pool.get()  # a fresh connection, on a new session
    try:
        assert dbenv.session_id(again) != session
    finally:
        pool.put(again)


def test_idle_timer_closes_without_further_pool_calls(dbenv: Database) -> None:
    pool = dbenv.make_pool(max_idle=0.3)
    conn = pool.get()
    session = dbenv.session_id(conn)
    pool.put(conn)
    # No call into the pool from here on: only its own timer can close the connection.
    assert dbenv.wait_gone([session], timeout=5.0), (
        f"idle session {session!r} still open 5 s after put() with max_idle=0.3"
    )
    # The worker updates the counters just after closing: allow it a moment.
    assert wait_until(lambda: pool.stats().closes["max_idle"] == 1), pool.stats()
    stats = pool.stats()
    assert (stats.size, stats.idle) == (0, 0)


def test_connection_block_commits_on_success(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool()
    with pool.connection() as conn:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {table} (v) VALUES (7)")
        cur.close()
    assert conn.released
    assert dbenv.committed_rows(table) == 1
    assert pool.stats().in_use == 0


def test_connection_block_rolls_back_on_exception(dbenv: Database) -> None:
    table = dbenv.create_table()
    pool = dbenv.make_pool(max_size=1)
    with pytest.raises(Boom):
        with pool.connection() as conn:
            session = dbenv.session_id(conn)
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {table} (v) VALUES (7)")
            cur.close()
            raise Boom
    assert conn.released
    assert dbenv.committed_rows(table) == 0
    assert dbenv.wait_in_transaction(session, False)
    with pool.connection() as conn:
        assert dbenv.session_id(conn) == session  # the connection was kept, not closed
        assert scalar(conn, f"SELECT count(*) FROM {table}") == 0
    assert pool.stats().in_use == 0


def test_pool_close_closes_idle_now_and_checked_out_on_return(dbenv: Database) -> None:
    pool = dbenv.make_pool(max_size=2)
    idle, held = pool.get(), pool.get()
    idle_session, held_session = dbenv.session_id(idle), dbenv.session_id(held)
    pool.put(idle)
    pool.close()
    assert dbenv.wait_gone([idle_session]), "idle session left open by close()"
    assert dbenv.is_alive(held_session)
    assert scalar(held, "SELECT 1") == 1  # still usable until returned
    pool.put(held)
    assert dbenv.wait_gone([held_session]), "returned session left open after close()"
    stats = pool.stats()
    assert stats.size == 0
    assert stats.closes["pool_closed"] == 2


def test_garbage_collected_proxy_is_closed_on_the_server(dbenv: Database) -> None:
    pool = dbenv.make_pool(max_size=1)
    conn = pool.get()
    session = dbenv.session_id(conn)
    del conn
    gc.collect()
    # The maintenance worker is poked and closes it; no call into the pool needed.
    assert dbenv.wait_gone([session]), "session of a lost proxy left open"
    # The worker updates the counters just after closing: allow it a moment.
    assert wait_until(lambda: pool.stats().closes["abandoned"] == 1), pool.stats()
    stats = pool.stats()
    assert stats.size == 0
    again = pool.get(timeout=5)  # the slot came back
    try:
        assert dbenv.session_id(again) != session
    finally:
        pool.put(again)


def test_connection_moves_between_threads(dbenv: Database) -> None:
    pool = dbenv.make_pool(max_size=1)
    seen: list[Any] = []
    errors: list[BaseException] = []

    def borrow() -> None:
        try:
            with pool.connection() as conn:
                assert scalar(conn, "SELECT 1") == 1
                seen.append(dbenv.session_id(conn))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=borrow)
    thread.start()
    thread.join(30)
    assert not errors, errors
    with pool.connection() as conn:  # opened in the other thread, used in this one
        assert dbenv.session_id(conn) == seen[0]
        assert scalar(conn, "SELECT 2") == 2
    assert pool.stats().connects == 1


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "psycopg", "pg8000"), indirect=True)
def test_min_size_connections_opened_and_kept(dbenv: Database) -> None:
    pool = dbenv.make_pool(min_size=2, max_size=3, max_idle=0.2)
    marker = pool.test_marker  # type: ignore[attr-defined]
    assert dbenv.marker_count(marker) == 2
    assert pool.stats().idle == 2
    conns = [pool.get() for _ in range(3)]
    assert dbenv.marker_count(marker) == 3
    for conn in conns:
        pool.put(conn)
    # The idle timer trims back to min_size, never below.
    assert wait_until(lambda: dbenv.marker_count(marker) == 2)
    time.sleep(0.6)
    assert dbenv.marker_count(marker) == 2
    assert pool.stats().size == 2
    pool.close()
    assert wait_until(lambda: dbenv.marker_count(marker) == 0)


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "psycopg", "pg8000"), indirect=True)
def test_connection_block_commit_failure_propagates(dbenv: Database) -> None:
    table = dbenv.create_table("v integer UNIQUE DEFERRABLE INITIALLY DEFERRED")
    pool = dbenv.make_pool(max_size=1)
    with pytest.raises(dbenv.module.Error) as info:  # raised by the commit at the end
        with pool.connection() as conn:
            session = dbenv.session_id(conn)
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {table} (v) VALUES (1)")
            cur.execute(f"INSERT INTO {table} (v) VALUES (1)")  # checked at commit only
            cur.close()
    assert "unique" in str(info.value).lower() or "duplicate" in str(info.value).lower()
    assert conn.released
    assert dbenv.committed_rows(table) == 0
    assert pool.stats().in_use == 0
    with pool.connection() as again:  # the same session, usable again
        assert dbenv.session_id(again) == session
        assert scalar(again, f"SELECT count(*) FROM {table}") == 0


def _com_rollback(conn: Any) -> int:
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Com_rollback'")
    value = int(cur.fetchone()[1])
    cur.close()
    return value


@pytest.mark.parametrize("dbenv", driver_params("MySQLdb"), indirect=True)
def test_mysqlclient_idle_test_keeps_the_gil(dbenv: Database) -> None:
    # It runs at every return. Had it let the GIL go (as a ctypes CDLL call does), each
    # return would then wait to take it back behind the other threads. Without forced
    # switches, another thread that gives the GIL up at once runs only when this one lets
    # it go: it must not run at all during a thousand idle tests.
    pool = dbenv.make_pool(max_size=1, connect={"autocommit": True})
    conn = pool.get()
    raw, idle = conn.raw, pool.profile.transaction_idle
    assert idle is not None and idle(raw)  # MariaDB Connector/C, so the test is there
    try:
        answers, during = calls_beside_a_gil_waiter(lambda: idle(raw), 1000)
    finally:
        pool.put(conn)
    assert answers == {True}
    assert during == 0


@pytest.mark.parametrize("dbenv", driver_params("MySQLdb", "pymysql"), indirect=True)
def test_mysql_return_skips_the_rollback_only_when_the_session_is_surely_idle(
    dbenv: Database,
) -> None:
    # An autocommit session outside a transaction needs no ROLLBACK round trip on return
    # (mysqlclient: read from MariaDB Connector/C's status word; PyMySQL: server_status).
    # One that opened a transaction explicitly, or has autocommit off, still gets it.
    pool = dbenv.make_pool(max_size=1, connect={"autocommit": True})
    conn = pool.get()
    before = _com_rollback(conn)
    pool.put(conn)
    conn = pool.get()
    assert _com_rollback(conn) == before  # no ROLLBACK was sent
    cur = conn.cursor()
    cur.execute("START TRANSACTION")
    cur.close()
    pool.put(conn)
    conn = pool.get()
    assert _com_rollback(conn) == before + 1  # the open transaction was rolled back
    conn.autocommit(False)  # both drivers spell it as a method
    pool.put(conn)
    conn = pool.get()
    assert _com_rollback(conn) == before + 2  # no autocommit: never surely idle
    conn.autocommit(True)
    pool.put(conn)
