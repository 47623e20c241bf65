"""Tests of the fake DB-API driver dbapi_pool.testing.fakedb."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import dbapi_pool.testing.fakedb as fakedb
from dbapi_pool.testing.fakedb import (
    FakeConnection,
    FakeDatabase,
    InterfaceError,
    LogEntry,
    OperationalError,
    ProgrammingError,
)


def run_in_thread(func: Callable[[], object]) -> BaseException | None:
    """Run ``func`` in a new thread and return what it raised, if anything."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            func()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return errors[0] if errors else None


def wait_for_log(db: FakeDatabase, method: str) -> None:
    """Wait until a call of ``method`` appears in the log."""
    deadline = time.monotonic() + 5
    while not any(entry.method == method for entry in list(db.log)):
        assert time.monotonic() < deadline, f"no {method} logged"
        time.sleep(0.001)


def start_sleep(conn: FakeConnection) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``SLEEP 5`` on ``conn`` in a thread; return the thread and its errors."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            conn.cursor().execute("SLEEP 5")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    wait_for_log(conn.database, "execute")
    return thread, errors


def test_module_attributes_follow_pep_249() -> None:
    assert fakedb.apilevel == "2.0"
    assert fakedb.threadsafety == 1
    assert fakedb.paramstyle == "qmark"


def test_exception_hierarchy_follows_pep_249() -> None:
    assert issubclass(fakedb.Warning, Exception)
    assert issubclass(fakedb.Error, Exception)
    assert issubclass(fakedb.InterfaceError, fakedb.Error)
    assert issubclass(fakedb.DatabaseError, fakedb.Error)
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(fakedb, name), fakedb.DatabaseError)


def test_database_exposes_module_attributes_and_exceptions() -> None:
    db = FakeDatabase()
    assert db.apilevel == "2.0"
    assert db.paramstyle == "qmark"
    assert db.threadsafety == 1
    assert db.__name__ == "fakedb"
    assert db.Error is fakedb.Error
    assert db.OperationalError is fakedb.OperationalError
    assert db.Warning is fakedb.Warning


def test_name_and_threadsafety_knobs() -> None:
    db = FakeDatabase(name="otherdb", threadsafety=2)
    assert db.__name__ == "otherdb"
    assert db.threadsafety == 2


def test_module_connect_uses_default_database() -> None:
    before = fakedb.default.connects
    conn = fakedb.connect()
    assert conn.database is fakedb.default
    assert fakedb.default.connects == before + 1
    conn.close()


def test_connect_stores_arguments() -> None:
    conn = FakeDatabase().connect("dsn", user="alice")
    assert conn.args == ("dsn",)
    assert conn.kwargs == {"user": "alice"}


def test_serials_count_from_one_per_database() -> None:
    db = FakeDatabase()
    assert [db.connect().serial for _ in range(3)] == [1, 2, 3]
    assert FakeDatabase().connect().serial == 1


def test_connect_delay_slows_connect() -> None:
    db = FakeDatabase(connect_delay=0.02)
    start = time.monotonic()
    db.connect()
    assert time.monotonic() - start >= 0.02


def test_fail_connects_refuses_the_next_connects() -> None:
    db = FakeDatabase(fail_connects=2)
    for _ in range(2):
        with pytest.raises(OperationalError, match="connection refused"):
            db.connect()
    db.connect()
    assert (db.fail_connects, db.connect_attempts, db.connects) == (0, 3, 1)


def test_connect_error_is_raised_until_reset() -> None:
    error = ConnectionResetError("boom")
    db = FakeDatabase(connect_error=error)
    for _ in range(2):
        with pytest.raises(ConnectionResetError) as info:
            db.connect()
        assert info.value is error
    db.connect_error = None
    db.connect()
    assert (db.connect_attempts, db.connects) == (3, 1)


def test_query_delay_slows_execute() -> None:
    cur = FakeDatabase(query_delay=0.02).connect().cursor()
    start = time.monotonic()
    cur.execute("SELECT 1")
    assert time.monotonic() - start >= 0.02


def test_select_returns_one_row_by_default() -> None:
    cur = FakeDatabase().connect().cursor()
    cur.execute("select 42")
    assert cur.description == (("col0", None, None, None, None, None, None),)
    assert cur.rowcount == 1
    assert cur.fetchall() == [(1,)]


def test_results_give_rows_for_exact_sql() -> None:
    db = FakeDatabase(results={"SELECT a, b FROM t": [(1, "x"), (2, "y")]})
    cur = db.connect().cursor()
    cur.execute("SELECT a, b FROM t")
    assert cur.description is not None
    assert [column[0] for column in cur.description] == ["col0", "col1"]
    assert cur.fetchall() == [(1, "x"), (2, "y")]


def test_results_can_be_changed_after_construction() -> None:
    db = FakeDatabase()
    db.results["SHOW x"] = [("on",)]
    cur = db.connect().cursor()
    assert cur.execute("SHOW x").fetchone() == ("on",)


def test_statement_without_result_set_has_nothing_to_fetch() -> None:
    cur = FakeDatabase().connect().cursor()
    cur.execute("SET x = 1")
    assert cur.description is None
    with pytest.raises(ProgrammingError, match="no results"):
        cur.fetchone()


def test_fetchone_fetchmany_and_iteration() -> None:
    db = FakeDatabase(results={"Q": [(1,), (2,), (3,), (4,), (5,)]})
    cur = db.connect().cursor()
    cur.execute("Q")
    assert cur.fetchone() == (1,)
    assert cur.fetchmany() == [(2,)]
    assert cur.fetchmany(2) == [(3,), (4,)]
    assert list(cur) == [(5,)]
    assert cur.fetchone() is None


def test_sleep_statement_sleeps() -> None:
    cur = FakeDatabase().connect().cursor()
    start = time.monotonic()
    cur.execute("SLEEP 0.02")
    assert time.monotonic() - start >= 0.02
    assert cur.description is None


def test_malformed_sleep_statement_raises() -> None:
    cur = FakeDatabase().connect().cursor()
    with pytest.raises(ProgrammingError, match="bad SLEEP"):
        cur.execute("SLEEP soon")


def test_fail_statement_raises_programming_error() -> None:
    cur = FakeDatabase().connect().cursor()
    with pytest.raises(ProgrammingError):
        cur.execute("FAIL")


@pytest.mark.parametrize(
    "sql", ["INSERT INTO t VALUES (1)", "update t", "DELETE", "CREATE T", "BEGIN"]
)
def test_writing_statements_open_a_transaction(sql: str) -> None:
    conn = FakeDatabase().connect()
    conn.cursor().execute(sql)
    assert conn.in_transaction


def test_select_does_not_open_a_transaction() -> None:
    conn = FakeDatabase().connect()
    conn.cursor().execute("SELECT 1")
    assert not conn.in_transaction


def test_commit_ends_transaction_and_counts() -> None:
    conn = FakeDatabase().connect()
    conn.cursor().execute("BEGIN")
    conn.commit()
    assert not conn.in_transaction
    assert (conn.commits, conn.rollbacks) == (1, 0)


def test_rollback_ends_transaction_and_counts() -> None:
    conn = FakeDatabase().connect()
    conn.cursor().execute("BEGIN")
    conn.rollback()
    assert not conn.in_transaction
    assert (conn.commits, conn.rollbacks) == (0, 1)


def test_rollback_statement_ends_transaction() -> None:
    conn = FakeDatabase().connect()
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("ROLLBACK")
    assert not conn.in_transaction


def test_dml_rowcount() -> None:
    cur = FakeDatabase().connect().cursor()
    cur.execute("UPDATE t SET x = ?", (1,))
    assert cur.rowcount == 1
    cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
    assert cur.rowcount == 3


def test_log_records_calls_in_order() -> None:
    db = FakeDatabase()
    conn = db.connect("dsn", user="u")
    cur = conn.cursor()
    cur.execute("SELECT ?", (1,))
    cur.executemany("INSERT INTO t VALUES (?)", iter([(1,), (2,)]))
    conn.commit()
    conn.rollback()
    conn.close()
    conn.close()
    assert db.log == [
        (1, "connect", (("dsn",), {"user": "u"})),
        (1, "cursor", ()),
        (1, "execute", ("SELECT ?", (1,))),
        (1, "executemany", ("INSERT INTO t VALUES (?)", [(1,), (2,)])),
        (1, "commit", ()),
        (1, "rollback", ()),
        (1, "close", ()),
    ]
    assert db.log[0] == LogEntry(serial=1, method="connect", args=(("dsn",), {"user": "u"}))


def test_failed_connects_are_not_logged() -> None:
    db = FakeDatabase(fail_connects=1)
    with pytest.raises(OperationalError):
        db.connect()
    assert db.log == []


def test_close_is_idempotent_and_counted_once() -> None:
    db = FakeDatabase()
    conn = db.connect()
    conn.close()
    conn.close()
    assert conn.closed
    assert db.closes == 1


@pytest.mark.parametrize("method", ["cursor", "commit", "rollback", "cancel"])
def test_closed_connection_raises_interface_error(method: str) -> None:
    conn = FakeDatabase().connect()
    conn.close()
    with pytest.raises(InterfaceError, match="connection already closed"):
        getattr(conn, method)()


def test_cursor_of_closed_connection_raises_interface_error() -> None:
    conn = FakeDatabase().connect()
    cur = conn.cursor()
    conn.close()
    with pytest.raises(InterfaceError, match="connection already closed"):
        cur.execute("SELECT 1")


def test_closed_cursor_raises_interface_error() -> None:
    cur = FakeDatabase().connect().cursor()
    cur.execute("SELECT 1")
    cur.close()
    with pytest.raises(InterfaceError, match="cursor already closed"):
        cur.fetchone()
    with pytest.raises(InterfaceError, match="cursor already closed"):
        cur.execute("SELECT 1")


def test_cursor_context_manager_closes_cursor() -> None:
    conn = FakeDatabase().connect()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    assert cur.closed


def test_connection_context_manager_commits_on_success() -> None:
    conn = FakeDatabase().connect()
    with conn:
        conn.cursor().execute("INSERT INTO t VALUES (1)")
    assert (conn.commits, conn.rollbacks, conn.in_transaction, conn.closed) == (1, 0, False, False)


def test_connection_context_manager_rolls_back_on_error() -> None:
    conn = FakeDatabase().connect()
    with pytest.raises(KeyError), conn:
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        raise KeyError("x")
    assert (conn.commits, conn.rollbacks, conn.in_transaction, conn.closed) == (0, 1, False, False)


def test_open_connections_and_max_open() -> None:
    db = FakeDatabase()
    first, second = db.connect(), db.connect()
    first.close()
    third = db.connect()
    assert db.open_connections == [second, third]
    assert db.max_open == 2
    assert db.connections == [first, second, third]


def test_concurrent_connects_are_all_counted() -> None:
    db = FakeDatabase(connect_delay=0.01)
    threads = [threading.Thread(target=db.connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert db.connects == db.connect_attempts == 8
    assert sorted(conn.serial for conn in db.connections) == list(range(1, 9))
    assert db.max_open == 8


def test_killed_connection_raises_operational_error_but_closes() -> None:
    db = FakeDatabase()
    conn = db.connect()
    cur = conn.cursor()
    conn.kill()
    assert conn.dead
    for call in (conn.cursor, conn.commit, conn.rollback, lambda: cur.execute("SELECT 1")):
        with pytest.raises(OperationalError, match="server closed the connection"):
            call()
    conn.close()
    assert conn.closed
    assert db.closes == 1


def test_kill_all_kills_open_connections_only() -> None:
    db = FakeDatabase()
    closed, alive = db.connect(), db.connect()
    closed.close()
    assert db.kill_all() == 1
    assert alive.dead
    assert not closed.dead


def test_kill_interrupts_running_sleep() -> None:
    conn = FakeDatabase().connect()
    thread, errors = start_sleep(conn)
    conn.kill()
    thread.join(5)
    assert not thread.is_alive()
    assert isinstance(errors[0], OperationalError)
    assert "server closed the connection" in str(errors[0])


def test_cancel_interrupts_sleep_in_another_thread() -> None:
    conn = FakeDatabase().connect()
    start = time.monotonic()
    thread, errors = start_sleep(conn)
    conn.cancel()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - start < 4
    assert isinstance(errors[0], OperationalError)
    assert "query cancelled" in str(errors[0])
    assert not conn.dead
    conn.cursor().execute("SELECT 1")


def test_cancel_without_running_statement_does_nothing() -> None:
    conn = FakeDatabase().connect()
    conn.cancel()
    assert conn.cursor().execute("SELECT 1").fetchall() == [(1,)]


def test_thread_affinity_rejects_other_threads() -> None:
    conn = FakeDatabase(thread_affinity=True).connect()
    for method in ("cursor", "commit", "rollback", "close"):
        error = run_in_thread(getattr(conn, method))
        assert isinstance(error, ProgrammingError)
        assert f"created in thread {conn.thread_id} used in thread" in str(error)
    assert not conn.closed


def test_thread_affinity_rejects_execute_from_other_thread() -> None:
    cur = FakeDatabase(thread_affinity=True).connect().cursor()
    assert isinstance(run_in_thread(lambda: cur.execute("SELECT 1")), ProgrammingError)


def test_thread_affinity_allows_creating_thread() -> None:
    conn = FakeDatabase(thread_affinity=True).connect()
    conn.cursor().execute("SELECT 1")
    conn.close()


def test_check_same_thread_false_lifts_thread_affinity() -> None:
    conn = FakeDatabase(thread_affinity=True).connect(check_same_thread=False)
    assert run_in_thread(lambda: conn.cursor().execute("SELECT 1")) is None
    assert run_in_thread(conn.close) is None
    assert conn.closed


def test_connections_can_move_between_threads_by_default() -> None:
    conn = FakeDatabase().connect()
    assert run_in_thread(lambda: conn.cursor().execute("SELECT 1")) is None
    assert conn.thread_id == threading.get_ident()
