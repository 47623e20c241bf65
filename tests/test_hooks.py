"""The lifecycle hooks ``configure`` and ``check`` of ConnectionPool (issue 12, part 1).

On the fake driver, then on the real servers (PostgreSQL with psycopg2 and psycopg,
MariaDB with PyMySQL and MySQLdb): a missing server or driver fails these tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbapi_pool import ConnectionPool, DatabaseConnector, DriverProfile, register_profile
from dbapi_pool.testing.fakedb import FakeConnection, FakeDatabase, OperationalError
from integration.support import DRIVERS, POSTGRES, Database, driver_params, scalar

Pools = Callable[..., ConnectionPool]


class Recorder:
    """A hook that records the connections it saw (and the threads it ran in)."""

    def __init__(self, result: object = True, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.seen: list[Any] = []
        self.threads: list[int] = []

    def __call__(self, conn: Any) -> object:
        self.seen.append(conn)
        self.threads.append(threading.get_ident())
        if self.error is not None:
            raise self.error
        return self.result


# -- configure, on the fake driver ------------------------------------------------------


def test_configure_runs_once_on_each_new_connection_before_it_is_lent(
    db: FakeDatabase, make_pool: Pools
) -> None:
    configure = Recorder()
    pool = make_pool(db, max_size=2, configure=configure)
    first, second = pool.get(), pool.get()
    assert configure.seen == [first.raw, second.raw]
    # Where the driver's connect() ran (here a connect attempt's thread, for connect_timeout).
    assert configure.threads == [first.raw.thread_id, second.raw.thread_id]
    pool.put(first)
    again = pool.get()  # reused: not configured again
    assert again.raw is configure.seen[0]
    assert len(configure.seen) == 2


def test_configure_runs_on_the_connections_the_pool_opens_itself(
    db: FakeDatabase, make_pool: Pools, eventually: Callable[..., bool]
) -> None:
    configure = Recorder()
    pool = make_pool(db, min_size=2, max_size=3, configure=configure)
    assert len(configure.seen) == 2  # the constructor's
    conn = pool.get()
    conn.raw.kill()
    pool.put(conn)  # closed as broken: the pool refills min_size
    assert eventually(lambda: len(configure.seen) == 3)
    assert configure.seen[2] in db.open_connections


def test_configure_that_raises_is_a_failed_connect(
    db: FakeDatabase, make_pool: Pools, caplog: pytest.LogCaptureFixture
) -> None:
    boom = OperationalError("SET refused")
    configure = Recorder(error=boom)
    pool = make_pool(db, max_size=1, configure=configure, reconnect_min=0, reconnect_max=0)
    with pytest.raises(OperationalError) as raised:
        pool.get()
    assert raised.value is boom
    assert configure.seen[0].closed  # the connection is closed, nothing leaks
    assert db.open_connections == []
    stats = pool.stats()
    assert (stats.connect_failures, stats.size, stats.connects) == (1, 0, 0)
    assert "could not connect (OperationalError: SET refused)" in caplog.text
    configure.error = None  # the slot is free again: the next get() connects
    assert pool.get(timeout=5).raw is configure.seen[-1]


def test_a_failed_configure_feeds_the_connect_backoff(db: FakeDatabase, make_pool: Pools) -> None:
    configure = Recorder(error=OperationalError("SET refused"))
    pool = make_pool(db, max_size=1, configure=configure, reconnect_min=5, reconnect_max=5)
    with pytest.raises(OperationalError):
        pool.get()
    with pytest.raises(OperationalError):  # failed fast: no second attempt
        pool.get(timeout=0.5)
    assert len(configure.seen) == 1
    assert pool.stats().unreachable == 1


def test_configure_work_left_in_a_transaction_is_committed(
    db: FakeDatabase, make_pool: Pools
) -> None:
    def configure(conn: FakeConnection) -> None:
        conn.cursor().execute("INSERT INTO settings VALUES (1)")

    pool = make_pool(db, max_size=1, configure=configure)
    conn = pool.get()
    assert conn.raw.commits == 1
    assert not conn.raw.in_transaction


# -- check, on the fake driver ----------------------------------------------------------


def test_check_runs_on_each_reused_checkout_not_on_a_new_connection(
    db: FakeDatabase, make_pool: Pools
) -> None:
    check = Recorder(result=None)  # anything but False passes
    pool = make_pool(db, max_size=1, check=check, check_idle_after=None)
    conn = pool.get()
    raw = conn.raw
    pool.put(conn)
    assert check.seen == []
    for _ in range(3):
        pool.put(pool.get())
    assert check.seen == [raw, raw, raw]


@pytest.mark.parametrize("verdict", ["returns False", "raises"])
def test_a_connection_the_check_rejects_is_replaced_within_the_same_get(
    verdict: str, db: FakeDatabase, make_pool: Pools
) -> None:
    check = Recorder()
    pool = make_pool(db, max_size=1, check=check, timeout=1)
    conn = pool.get()
    old = conn.raw
    pool.put(conn)
    if verdict == "raises":
        check.error = OperationalError("server gone")
    else:
        check.result = False
    started = time.monotonic()
    conn = pool.get()
    assert time.monotonic() - started < 1  # replaced, not waited for
    assert conn.raw is not old
    assert old.closed
    assert pool.stats().closes["failed_check"] == 1


def test_a_transaction_the_check_left_open_is_rolled_back(make_pool: Pools) -> None:
    # A driver whose profile tells an open transaction, as the real ones' do.
    register_profile(
        DriverProfile(name="fakedb_tells", transaction_idle=lambda c: not c.in_transaction)
    )
    db = FakeDatabase(name="fakedb_tells")

    def check(conn: FakeConnection) -> bool:
        conn.cursor().execute("UPDATE t SET v = 1")
        return True

    pool = make_pool(db, max_size=1, check=check, reset=None)
    pool.put(pool.get())
    conn = pool.get()
    assert not conn.raw.in_transaction
    assert conn.raw.rollbacks == 1


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["configure", "check"])
def test_a_hook_that_is_not_callable_is_refused(setting: str, db: FakeDatabase) -> None:
    with pytest.raises(TypeError, match=rf"pool 'orders': {setting} must be None or a callable"):
        ConnectionPool(db, name="orders", **{setting: "SET TIME ZONE 'UTC'"})


@pytest.mark.parametrize("setting", ["configure", "check"])
def test_a_coroutine_hook_is_refused_by_the_blocking_pool(setting: str, db: FakeDatabase) -> None:
    async def hook(conn: Any) -> None:
        pass

    with pytest.raises(TypeError, match=rf"pool 'orders': {setting} is a coroutine function"):
        ConnectionPool(db, name="orders", **{setting: hook})
    assert db.connect_attempts == 0


def test_the_hooks_are_off_by_default(db: FakeDatabase) -> None:
    pool = ConnectionPool(db, name="orders")
    assert (pool.config.configure, pool.config.check) == (None, None)
    pool.close()


def test_the_connector_passes_the_hooks_to_its_pools(db: FakeDatabase) -> None:
    configure, check = Recorder(), Recorder()
    connector = DatabaseConnector(
        db, {"default": {}}, configure=configure, check=check, check_idle_after=None
    )
    try:
        pool = connector.get("h", "d")
        pool.put(pool.get())
        pool.put(pool.get())
        assert (len(configure.seen), len(check.seen)) == (1, 1)
    finally:
        connector.close()


# -- real servers -------------------------------------------------------------------------

REAL = ("psycopg2", "psycopg", "pymysql", "MySQLdb")


@pytest.fixture(params=driver_params(*REAL))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database(DRIVERS[request.param], tmp_path)
    try:
        yield database
    finally:
        database.close()


def _set_tag(server: Database, conn: Any, tag: str) -> None:
    cur = conn.cursor()
    if server.server == POSTGRES:
        cur.execute(f"SET dbapi_pool.tag = '{tag}'")
    else:
        cur.execute(f"SET @dbapi_pool_tag = '{tag}'")
    cur.close()


def _tag(server: Database, conn: Any) -> Any:
    if server.server == POSTGRES:
        return scalar(conn, "SELECT current_setting('dbapi_pool.tag', true)")
    return scalar(conn, "SELECT @dbapi_pool_tag")


def test_configure_sets_the_session_state_every_lent_connection_shows(server: Database) -> None:
    pool = server.make_pool(max_size=2, configure=lambda conn: _set_tag(server, conn, "hooked"))
    for _ in range(3):
        conns = [pool.get(), pool.get()]
        for conn in conns:
            assert _tag(server, conn) == "hooked"
            conn.rollback()  # a caller's rollback does not undo it: it was committed
        for conn in conns:
            pool.put(conn)
    assert pool.stats().connects == 2


def test_a_failing_configure_leaves_no_session_on_the_server(server: Database) -> None:
    sessions: list[Any] = []

    def configure(conn: Any) -> None:
        if server.server == POSTGRES:
            sessions.append(scalar(conn, "SELECT pg_backend_pid()"))
        else:
            sessions.append(scalar(conn, "SELECT CONNECTION_ID()"))
        raise server.module.OperationalError("configure refused")

    pool = server.make_pool(max_size=1, configure=configure)
    with pytest.raises(server.module.OperationalError, match="configure refused"):
        pool.get()
    assert pool.stats().connect_failures == 1
    assert server.wait_gone(sessions)
    if server.server == POSTGRES:
        assert server.marker_count(pool.test_marker) == 0  # type: ignore[attr-defined]


def test_a_check_that_rejects_replaces_the_session_within_the_same_get(
    server: Database,
) -> None:
    rejected: set[Any] = set()

    def check(conn: Any) -> bool:
        session = scalar(conn, "SELECT 1")
        assert session == 1
        return id(conn) not in rejected

    pool = server.make_pool(max_size=1, check=check, timeout=5)
    conn = pool.get()
    old_session = server.session_id(conn)
    rejected.add(id(conn.raw))
    pool.put(conn)
    conn = pool.get()
    assert server.session_id(conn) != old_session
    assert server.wait_gone([old_session])
    assert pool.stats().closes["failed_check"] == 1
    pool.put(conn)
