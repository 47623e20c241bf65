"""dbapi_pool.compat.eventlet_db_pool: eventlet 0.41.3's db_pool interface, on dbapi-pool.

Real MySQLdb and psycopg2 connections against the real servers (MariaDB and PostgreSQL at
127.0.0.1; a missing server fails the tests, never skips them). Plain behaviours run here;
whatever needs green threads runs in subprocesses (``compat_scenarios/``), unpatched and
after ``eventlet.monkey_patch()``, which cannot be undone.
"""

from __future__ import annotations

import gc
import inspect
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import MySQLdb
import psycopg2
import pytest

from dbapi_pool.compat import eventlet_db_pool as db_pool
from dbapi_pool.errors import UnknownHost

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated")

SCENARIOS = Path(__file__).parent / "compat_scenarios"
MYSQL = {"host": "127.0.0.1", "user": "root", "passwd": "", "db": "test"}
POSTGRES = {"host": "127.0.0.1", "user": "postgres", "dbname": "test"}
DRIVERS = {"MySQLdb": (MySQLdb, MYSQL), "psycopg2": (psycopg2, POSTGRES)}
WARNINGS_OFF = "import warnings; warnings.filterwarnings('ignore', message=r'\\s*Eventlet')"


# -- the servers and the pools --------------------------------------------------------------


class Server:
    """Watch one server's sessions from a monitoring connection of its own."""

    def __init__(self, driver: str) -> None:
        self.driver = driver
        module, kwargs = DRIVERS[driver]
        try:
            self.monitor = module.connect(**kwargs)
        except Exception as exc:
            pytest.fail(f"cannot reach the {driver} test server: {exc}", pytrace=False)
        if driver == "MySQLdb":
            self.monitor.autocommit(True)
            self.execute("SET SESSION lock_wait_timeout = 5")
        else:
            self.monitor.autocommit = True
            self.execute("SET lock_timeout = '5s'")  # a test that failed may hold a lock

    def execute(self, sql: str) -> None:
        cur = self.monitor.cursor()
        cur.execute(sql)
        cur.close()

    def query(self, sql: str, params: Any = None) -> list[Any]:
        cur = self.monitor.cursor()
        cur.execute(sql, params)
        rows = list(cur.fetchall())
        cur.close()
        return rows

    def session(self, conn: Any) -> int:
        """Return the server's id of a pooled connection's session."""
        sql = "SELECT CONNECTION_ID()" if self.driver == "MySQLdb" else "SELECT pg_backend_pid()"
        cur = conn.cursor()
        cur.execute(sql)
        (session,) = cur.fetchone()
        cur.close()
        return int(session)

    def alive(self, *sessions: int) -> int:
        """Count how many of these sessions the server still has."""
        marks = ", ".join(["%s"] * len(sessions))
        table = (
            "information_schema.PROCESSLIST WHERE ID"
            if self.driver == "MySQLdb"
            else "pg_stat_activity WHERE pid"
        )
        return int(self.query(f"SELECT count(*) FROM {table} IN ({marks})", sessions)[0][0])

    def gone(self, *sessions: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive(*sessions):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def table(self) -> str:
        name = f"compat_t_{uuid.uuid4().hex[:12]}"
        engine = " ENGINE=InnoDB" if self.driver == "MySQLdb" else ""
        self.execute(f"CREATE TABLE {name} (v integer){engine}")
        return name

    def drop(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    found = {name: Server(name) for name in DRIVERS}
    yield found
    for server in found.values():
        server.monitor.close()


@pytest.fixture(params=list(DRIVERS))
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server(servers: dict[str, Server], driver: str) -> Server:
    return servers[driver]


@pytest.fixture
def make_pool(driver: str) -> Iterator[Callable[..., Any]]:
    """Return ``make(cls=RawConnectionPool, *args, **kw)`` on the driver; closed afterwards."""
    pools: list[Any] = []
    module, kwargs = DRIVERS[driver]

    def make(cls: Any = db_pool.RawConnectionPool, *args: Any, **settings: Any) -> Any:
        pool = cls(module, *args, **{**kwargs, **settings})
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def table(server: Server) -> Iterator[str]:
    name = server.table()
    yield name
    server.drop(name)


def insert_uncommitted(conn: Any, table: str) -> None:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {table} VALUES (1)")
    cur.close()


def rows(conn: Any, table: str) -> int:
    cur = conn.cursor()
    cur.execute(f"SELECT count(*) FROM {table}")
    (count,) = cur.fetchone()
    cur.close()
    return int(count)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the interface -------------------------------------------------------------------------


def upstream() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from eventlet import db_pool as upstream_db_pool
    return upstream_db_pool


def test_names_signatures_and_defaults_match_eventlet() -> None:
    theirs = upstream()
    for name in (
        "ConnectTimeout",
        "cleanup_rollback",
        "BaseConnectionPool",
        "TpooledConnectionPool",
        "RawConnectionPool",
        "ConnectionPool",
        "GenericConnectionWrapper",
        "PooledConnectionWrapper",
        "DatabaseConnector",
    ):
        assert hasattr(db_pool, name), name
    assert db_pool.ConnectionPool is db_pool.TpooledConnectionPool
    assert issubclass(db_pool.ConnectTimeout, Exception)
    assert issubclass(db_pool.PooledConnectionWrapper, db_pool.GenericConnectionWrapper)
    for owner, method in [
        ("BaseConnectionPool", "__init__"),
        ("BaseConnectionPool", "put"),
        ("BaseConnectionPool", "item"),
        ("BaseConnectionPool", "_unwrap_connection"),
        ("BaseConnectionPool", "_safe_close"),
        ("TpooledConnectionPool", "connect"),
        ("RawConnectionPool", "connect"),
        ("TpooledConnectionPool", "create"),
        ("GenericConnectionWrapper", "__init__"),
        ("PooledConnectionWrapper", "__init__"),
        ("DatabaseConnector", "__init__"),
        ("DatabaseConnector", "credentials_for"),
        ("DatabaseConnector", "get"),
    ]:
        ours = inspect.signature(getattr(getattr(db_pool, owner), method)).parameters
        upstream_params = inspect.signature(getattr(getattr(theirs, owner), method)).parameters
        assert [(p.name, p.kind) for p in ours.values()] == [
            (p.name, p.kind) for p in upstream_params.values()
        ], f"{owner}.{method}"
        for name, param in upstream_params.items():
            default = ours[name].default
            if callable(param.default):
                assert default.__name__ == param.default.__name__, f"{owner}.{method}({name})"
            elif param.default is not inspect.Parameter.empty and name != "cleanup":
                assert default == param.default, f"{owner}.{method}({name})"
    wrapped = {n for n in vars(theirs.GenericConnectionWrapper) if not n.startswith("_")}
    assert wrapped == {n for n in vars(db_pool.GenericConnectionWrapper) if not n.startswith("_")}


def test_pool_attributes_are_the_classic_ones(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(db_pool.TpooledConnectionPool, 0, 3, 7, 11, 2)
    assert (pool.min_size, pool.max_size, pool.max_idle, pool.max_age) == (0, 3, 7, 11)
    assert pool.connect_timeout == 2
    assert pool.cleanup is db_pool.cleanup_rollback
    assert (pool.current_size, pool.free(), pool.waiting()) == (0, 3, 0)
    assert isinstance(pool.free_items, deque) and not pool.free_items


# -- get, put, reuse -------------------------------------------------------------------------


def test_min_size_connections_are_opened_by_the_constructor(
    make_pool: Callable[..., Any], server: Server
) -> None:
    pool = make_pool(db_pool.TpooledConnectionPool, min_size=5, max_size=6)
    assert pool.current_size == 5
    assert len(pool.free_items) == 5
    out = [pool.get() for _ in range(5)]
    assert server.alive(*[server.session(conn) for conn in out]) == 5
    assert pool.current_size == 5  # reused, not opened anew
    for conn in out:
        pool.put(conn)


def test_idle_connections_are_reused_newest_first(make_pool: Callable[..., Any]) -> None:
    pool = make_pool()
    first, second = pool.get(), pool.get()
    first_base, second_base = first._base, second._base
    pool.put(first)
    pool.put(second)
    idle = pool.free_items
    assert isinstance(idle, deque)
    assert [id(c) for c in idle] == [id(second_base), id(first_base)]  # newest first
    again = pool.get()
    assert again._base is second_base
    assert pool.current_size == 2 and pool.free() == 3
    pool.put(again)


def test_free_items_is_a_snapshot(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(min_size=1)
    pool.free_items.clear()
    assert len(pool.free_items) == 1  # a fresh deque at each access


def test_free_counts_idle_connections_and_room_to_grow(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=3)
    assert pool.free() == 3
    conn = pool.get()
    assert (pool.free(), pool.current_size) == (2, 1)
    pool.put(conn)
    assert (pool.free(), pool.current_size, len(pool.free_items)) == (3, 1, 1)


def test_tpooled_pool_hands_out_an_offloading_view(
    make_pool: Callable[..., Any], driver: str
) -> None:
    pool = make_pool(db_pool.TpooledConnectionPool)
    conn = pool.get()
    view = conn._base
    assert type(view._obj).__module__.split(".")[0] == driver  # the driver's, behind it
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall()[0][0] == 1
    pool.put(conn)
    assert pool.free_items[0] is view


def test_get_put_runs_the_default_cleanup(table: str, make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=1)
    conn = pool.get()
    insert_uncommitted(conn, table)
    assert rows(conn, table) == 1
    pool.put(conn)
    again = pool.get()  # the same session: its uncommitted insert was rolled back
    assert rows(again, table) == 0
    pool.put(again)


def test_cleanup_none_skips_the_rollback(table: str, make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=1, cleanup=None)
    conn = pool.get()
    insert_uncommitted(conn, table)
    pool.put(conn)
    again = pool.get()
    assert rows(again, table) == 1  # still in the same transaction
    again.rollback()
    pool.put(again)


def test_a_cleanup_given_to_put_overrides_the_pools(
    table: str, make_pool: Callable[..., Any]
) -> None:
    keeping = make_pool(max_size=1, cleanup=None)
    conn = keeping.get()
    insert_uncommitted(conn, table)
    keeping.put(conn, cleanup=db_pool.cleanup_rollback)
    again = keeping.get()
    assert rows(again, table) == 0
    again.rollback()
    keeping.put(again)
    rolling = make_pool(max_size=1)
    conn = rolling.get()
    insert_uncommitted(conn, table)
    rolling.put(conn, cleanup=None)
    again = rolling.get()
    assert rows(again, table) == 1
    rolling.put(again)  # the pool's own cleanup this time


def test_item_lends_a_connection_for_a_with_block(
    table: str, make_pool: Callable[..., Any]
) -> None:
    pool = make_pool(max_size=1)
    with pool.item() as conn:
        insert_uncommitted(conn, table)
        base = conn._base
    assert not conn and pool.free_items[0] is base
    with pool.item(cleanup=None) as conn:
        assert rows(conn, table) == 0  # rolled back on the way out
        insert_uncommitted(conn, table)
    with pool.item() as conn:
        assert rows(conn, table) == 1  # cleanup=None kept the transaction
    assert pool.current_size == 1 and len(pool.free_items) == 1


@pytest.mark.parametrize("driver", ["psycopg2"])
@pytest.mark.parametrize("cls", ["TpooledConnectionPool", "RawConnectionPool"])
def test_clear_returns_after_the_server_ended_the_sessions(
    make_pool: Callable[..., Any], server: Server, cls: str
) -> None:
    # Issue 11, defect 1: psycopg2 unpatched (so offloaded by the tpooled pool); without
    # the wait for the server, a session of three was still listed in about a third of
    # the rounds.
    for _ in range(20):
        pool = make_pool(getattr(db_pool, cls))
        held = [pool.get() for _ in range(3)]
        sessions = [server.session(conn) for conn in held]
        for conn in held:
            pool.put(conn)
        pool.clear()
        assert server.alive(*sessions) == 0
        pool.close()


def test_clear_closes_every_idle_connection(make_pool: Callable[..., Any], server: Server) -> None:
    pool = make_pool(min_size=2)
    idle = [pool.get(), pool.get()]
    sessions = [server.session(conn) for conn in idle]
    for conn in idle:
        pool.put(conn)
    out = pool.get()
    pool.clear()
    assert pool.current_size == 1 and not pool.free_items
    assert server.gone(sessions[1] if server.session(out) == sessions[0] else sessions[0])
    assert server.session(out) in sessions  # the one out is untouched
    pool.put(out)
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


# -- returned wrappers, foreign objects, put(None) -----------------------------------------


def test_a_returned_wrapper_is_falsy_and_useless(make_pool: Callable[..., Any]) -> None:
    pool = make_pool()
    conn = pool.get()
    assert conn
    pool.put(conn)
    assert not conn
    for method in ("cursor", "commit", "rollback"):
        with pytest.raises(AttributeError):
            getattr(conn, method)()
    conn.close()  # a no-op
    pool.put(conn)  # a no-op too: no count changes
    assert (pool.current_size, len(pool.free_items), pool.free()) == (1, 1, 4)
    assert "returned" in repr(conn)


def test_close_puts_the_wrapper_back(make_pool: Callable[..., Any]) -> None:
    pool = make_pool()
    conn = pool.get()
    base = conn._base
    conn.close()
    assert not conn and pool.free_items[0] is base
    conn.close()
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


def test_a_wrapper_put_into_another_pool_goes_back_to_its_own(
    make_pool: Callable[..., Any],
) -> None:
    home, other = make_pool(), make_pool()
    conn = home.get()
    base = conn._base
    other.put(conn)
    assert not conn
    assert (home.current_size, list(home.free_items)) == (1, [base])
    assert (other.current_size, len(other.free_items)) == (0, 0)


def test_a_foreign_raw_connection_leaves_the_counts_alone(
    make_pool: Callable[..., Any], driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    module, kwargs = DRIVERS[driver]
    pool = make_pool()
    pool.put(pool.get())
    raw = module.connect(**kwargs)
    with caplog.at_level(logging.WARNING, "dbapi_pool"):
        pool.put(raw)
    assert (pool.current_size, len(pool.free_items), pool.free()) == (1, 1, 4)
    assert "not out of this pool" in caplog.text
    cur = raw.cursor()
    cur.execute("SELECT 1")  # not closed: it is not the pool's
    raw.close()
    idle = pool.free_items[0]
    pool.put(idle)  # an idle connection put again is not queued twice
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


def test_the_raw_connection_of_a_checkout_returns_it(make_pool: Callable[..., Any]) -> None:
    pool = make_pool()
    conn = pool.get()
    base = conn._base
    pool.put(base)
    assert not conn  # its wrapper went with it
    assert (pool.current_size, list(pool.free_items)) == (1, [base])


def test_put_none_frees_a_slot(make_pool: Callable[..., Any], server: Server) -> None:
    pool = make_pool(max_size=1)
    held = pool.get()
    held_session = server.session(held)
    assert pool.free() == 0
    pool.put(None)
    assert (pool.free(), pool.current_size) == (1, 0)
    fresh = pool.get()  # opens a new connection
    assert server.session(fresh) != held_session
    assert pool.current_size == 1
    pool.put(held)  # detached by put(None): closed, no count changes
    assert server.gone(held_session)
    assert (pool.current_size, len(pool.free_items)) == (1, 0)
    pool.put(fresh)
    assert (pool.current_size, len(pool.free_items), pool.free()) == (1, 1, 1)


def test_put_none_after_dropping_a_wrapper_frees_that_one(
    make_pool: Callable[..., Any], server: Server
) -> None:
    pool = make_pool(max_size=2)
    kept = pool.get()
    dropped = pool.get()
    session = server.session(dropped)
    del dropped
    gc.collect()
    pool.put(None)
    assert server.gone(session)
    assert pool.current_size == 1 and kept  # the other checkout is untouched
    pool.put(kept)
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


def test_put_none_with_nothing_out_changes_nothing(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(min_size=1)
    pool.put(None)
    assert (pool.current_size, pool.free(), len(pool.free_items)) == (1, 4, 1)


def test_a_dropped_wrapper_closes_its_connection_and_frees_its_slot(
    make_pool: Callable[..., Any], server: Server
) -> None:
    pool = make_pool(max_size=1)
    conn = pool.get()
    session = server.session(conn)
    del conn
    gc.collect()
    again = pool.get()  # the slot came back (a leak would block here forever)
    assert server.gone(session)
    pool.put(again)


def test_unwrap_connection(make_pool: Callable[..., Any], server: Server) -> None:
    pool = make_pool(max_size=1)
    assert pool._unwrap_connection(None) is None
    assert pool._unwrap_connection(object()) is None
    holder = type("Holder", (), {"_base": "inside"})()
    assert pool._unwrap_connection(holder) == "inside"
    assert pool._unwrap_connection(db_pool.GenericConnectionWrapper("base")) == "base"
    conn = pool.get()
    raw = pool._unwrap_connection(conn)
    assert raw is not None and not conn
    session = server.session(db_pool.GenericConnectionWrapper(raw))
    assert pool.current_size == 1  # the slot stays taken while the caller has it
    pool.put(conn)  # the unwrapped wrapper: its slot is freed, its connection kept
    assert (pool.current_size, pool.free()) == (0, 1)
    assert server.alive(session) == 1
    raw.close()


def test_safe_close(
    make_pool: Callable[..., Any],
    driver: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module, kwargs = DRIVERS[driver]
    pool = make_pool()
    raw = module.connect(**kwargs)
    pool._safe_close(raw)
    assert (not raw.open) if driver == "MySQLdb" else raw.closed
    pool._safe_close(None)  # AttributeError: swallowed
    broken = type("Broken", (), {"close": lambda self: 1 / 0})()
    with caplog.at_level(logging.DEBUG, "dbapi_pool"):
        pool._safe_close(broken, quiet=True)
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        pool._safe_close(broken)
    assert [r.levelno for r in caplog.records if "ZeroDivisionError" in r.getMessage()] == [
        logging.DEBUG,
        logging.WARNING,
    ]
    assert capsys.readouterr().out == ""  # logged, never printed

    def interrupt(self: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool._safe_close(type("Interrupting", (), {"close": interrupt})())
    conn = pool.get()
    pool._safe_close(conn)  # a wrapper goes back to the pool
    assert not conn and len(pool.free_items) == 1


# -- closing on put ------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [{"max_idle": 0}, {"max_age": 0}, {"max_idle": -1}])
def test_zero_max_idle_or_max_age_closes_on_put(
    make_pool: Callable[..., Any], server: Server, setting: dict[str, int]
) -> None:
    pool = make_pool(**setting)
    conn = pool.get()
    session = server.session(conn)
    pool.put(conn)
    assert server.gone(session)
    assert (pool.current_size, len(pool.free_items)) == (0, 0)


def test_a_connection_past_max_age_is_closed_when_put_back(
    make_pool: Callable[..., Any], server: Server
) -> None:
    pool = make_pool(max_age=0.3)
    conn = pool.get()
    session = server.session(conn)
    time.sleep(0.35)
    pool.put(conn)
    assert server.gone(session)
    assert pool.current_size == 0


def test_an_exception_from_cleanup_closes_the_connection(
    make_pool: Callable[..., Any], server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    def failing(conn: Any) -> None:
        raise ValueError("cleanup failed")

    pool = make_pool(cleanup=failing)
    conn = pool.get()
    session = server.session(conn)
    with caplog.at_level(logging.WARNING, "dbapi_pool"):
        pool.put(conn)  # swallowed
    assert "cleanup failed" in caplog.text
    assert server.gone(session)
    assert (pool.current_size, pool.free()) == (0, 4)


def test_a_base_exception_from_cleanup_propagates_without_leaking_the_slot(
    make_pool: Callable[..., Any], server: Server
) -> None:
    def interrupted(conn: Any) -> None:
        raise KeyboardInterrupt

    pool = make_pool(max_size=1)
    conn = pool.get()
    session = server.session(conn)
    with pytest.raises(KeyboardInterrupt):
        pool.put(conn, cleanup=interrupted)
    assert server.gone(session)
    assert (pool.current_size, pool.free()) == (0, 1)
    pool.put(pool.get())  # the slot is usable


def test_a_dead_idle_connection_is_replaced_on_get(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=1, cleanup=None)
    conn = pool.get()
    conn._base.close()  # closed behind the pool's back
    pool.put(conn)
    again = pool.get()
    cur = again.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchall()[0][0] == 1
    assert pool.current_size == 1
    pool.put(again)


# -- connecting ---------------------------------------------------------------------------


def test_a_driver_error_from_connect_propagates_and_frees_the_slot(
    make_pool: Callable[..., Any], driver: str
) -> None:
    module, _ = DRIVERS[driver]
    pool = make_pool(max_size=1, port=free_port())
    with pytest.raises(module.OperationalError) as info:
        pool.get()
    assert type(info.value) is module.OperationalError  # unchanged, not wrapped
    assert (pool.current_size, pool.free(), pool.waiting()) == (0, 1, 0)


def test_create_and_connect_open_uncounted_connections(make_pool: Callable[..., Any]) -> None:
    pool = make_pool()
    created, used, conn = pool.create()
    assert isinstance(created, float) and created == used
    assert pool.current_size == 0
    cur = conn.cursor()
    cur.execute("SELECT 1")
    conn.close()
    raw = db_pool.RawConnectionPool.connect(MySQLdb, 5, **MYSQL)
    assert isinstance(raw, MySQLdb.connections.Connection)
    raw.close()


def test_a_subclass_overriding_connect_is_used(make_pool: Callable[..., Any]) -> None:
    opened: list[Any] = []

    class Recording(db_pool.RawConnectionPool):
        @classmethod
        def connect(cls, db_module: Any, connect_timeout: Any, *args: Any, **kw: Any) -> Any:
            conn = super().connect(db_module, connect_timeout, *args, **kw)
            opened.append(conn)
            return conn

    pool = make_pool(Recording)
    conn = pool.get()
    assert opened == [conn._base]
    pool.put(conn)


def test_resize_changes_max_size(make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=1)
    first = pool.get()
    pool.resize(2)
    second = pool.get()  # room at once, no waiting
    assert (pool.max_size, pool.current_size, pool.free()) == (2, 2, 0)
    pool.resize(1)
    pool.put(first)  # over the new size: closed
    pool.put(second)
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


def test_settings_can_be_assigned_like_upstreams_attributes(
    make_pool: Callable[..., Any], server: Server
) -> None:
    pool = make_pool()
    pool.max_size = 1
    assert (pool.max_size, pool.free()) == (1, 1)
    conn = pool.get()
    session = server.session(conn)
    pool.max_age = 0  # from now on, every connection is closed when put back
    pool.put(conn)
    assert server.gone(session)
    assert (pool.max_age, pool.current_size) == (0, 0)


def test_connection_commits_and_puts_back(table: str, make_pool: Callable[..., Any]) -> None:
    pool = make_pool(max_size=1)
    with pool.connection() as conn:
        insert_uncommitted(conn, table)
    with pool.item() as conn:
        assert rows(conn, table) == 1
    assert (pool.current_size, len(pool.free_items)) == (1, 1)


# -- DatabaseConnector ---------------------------------------------------------------------


def test_database_connector_uses_the_default_credentials() -> None:
    connector = db_pool.DatabaseConnector(
        MySQLdb, {"default": {"user": "root", "passwd": ""}}, max_size=2
    )
    pool = connector.get("127.0.0.1", "test")
    try:
        assert isinstance(pool, db_pool.ConnectionPool)
        assert connector.get("127.0.0.1", "test") is pool
        assert pool.max_size == 2
        assert pool._kwargs == {"host": "127.0.0.1", "db": "test", "user": "root", "passwd": ""}
        with pool.item() as conn:
            cur = conn.cursor()
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone()[0] == "test"
        assert connector.credentials_for("elsewhere") == {"user": "root", "passwd": ""}
    finally:
        pool.close()


def test_database_connector_prefers_the_hosts_own_credentials() -> None:
    credentials = {"127.0.0.1": {"user": "root", "passwd": ""}, "default": {"user": "nobody"}}
    connector = db_pool.DatabaseConnector(MySQLdb, credentials, db_pool.RawConnectionPool)
    pool = connector.get("127.0.0.1", "test")
    try:
        assert type(pool) is db_pool.RawConnectionPool
        pool.put(pool.get())
        assert connector.get("127.0.0.1", "mysql") is not pool  # one pool per database
    finally:
        pool.close()
        connector.get("127.0.0.1", "mysql").close()


def test_database_connector_unknown_host_is_a_key_error() -> None:
    connector = db_pool.DatabaseConnector(MySQLdb, {"db1": {"user": "root"}})
    with pytest.raises(KeyError) as info:
        connector.get("db2", "test")
    assert isinstance(info.value, UnknownHost)
    assert "db2" in str(info.value)


# -- in green threads (subprocesses) -------------------------------------------------------


class SilentListener:
    """Accept TCP connections on 127.0.0.1 and never say a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for sock in self.accepted:
            sock.close()


class DelayedProxy:
    """Forward TCP connections to ``target``, connecting upstream only after ``delay``."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.answered = 0  # connections the server spoke on
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client = self.listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        time.sleep(self.delay)
        with client, socket.create_connection(self.target) as upstream:
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            self._pump(upstream, client, count=True)

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool = False) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    self.answered += 1
                    count = False
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def green(request: pytest.FixtureRequest, servers: dict[str, Server]) -> Iterator[dict[str, Any]]:
    """Run every green scenario once, unpatched or monkey-patched; return the JSON."""
    silent = SilentListener()
    delayed = DelayedProxy(("127.0.0.1", 5432), 0.6)
    args = ["--silent", silent.port, "--delayed", delayed.port, "--dead", free_port()]
    if request.param == "patched":
        args.insert(0, "--patched")
    try:
        done = subprocess.run(
            [sys.executable, str(SCENARIOS / "run_scenarios.py"), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=SCENARIOS,
        )
    finally:
        silent.close()
        delayed.close()
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    results["delayed_answered"] = delayed.answered
    results["silent_accepted"] = len(silent.accepted)
    assert results["patched"] == (request.param == "patched")
    yield results


def observed(green: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = green[name]
    assert "error" not in result, result.get("error")
    return result


def test_a_blocked_get_parks_only_its_green_thread_and_put_wakes_it(
    green: dict[str, Any],
) -> None:
    seen = observed(green, "blocked_get")
    assert seen["waiting"] == 1
    assert seen["ticks"] >= 5, "other green threads did not run while get() waited"
    assert seen["woken_with_the_returned_connection"]
    assert (seen["waiting_after"], seen["current_size"], seen["idle"]) == (0, 1, 1)


def test_put_none_lets_a_waiter_open_a_new_connection(green: dict[str, Any]) -> None:
    seen = observed(green, "put_none_wakes_a_waiter")
    assert seen["waiting_before"] == 1
    assert seen["new_connection"]
    assert (seen["current_size"], seen["current_size_after"]) == (1, 1)


def test_get_waits_forever_by_default_and_accepts_a_timeout(green: dict[str, Any]) -> None:
    seen = observed(green, "get_timeout")
    assert seen["outcome"] == "PoolTimeout"
    assert 0.15 <= seen["elapsed"] < 2.0
    assert seen["default_still_waiting"] == 1


def test_a_failed_connect_wakes_the_other_waiters(green: dict[str, Any]) -> None:
    seen = observed(green, "failed_connect_wakes_waiters")
    assert seen["waiting_before"] == 2
    assert seen["outcomes"] == ["MySQLdb.OperationalError"] * 2
    assert (seen["waiting_after"], seen["current_size"]) == (0, 0)


def test_connect_timeout_raises_connect_timeout_from_get(green: dict[str, Any]) -> None:
    seen = observed(green, "connect_timeout")
    assert green["silent_accepted"] >= 1, "the drivers never reached the silent listener"
    expected = {"TpooledConnectionPool/MySQLdb", "TpooledConnectionPool/psycopg2"}
    if green["patched"]:
        expected.add("RawConnectionPool/psycopg2")
    assert set(seen) == expected
    for kind, result in seen.items():
        assert result["outcome"] == "ConnectTimeout", kind
        assert 0.45 <= result["elapsed"] < 3.0, kind
        assert (result["current_size"], result["free"]) == (0, 2), kind


def test_a_connection_arriving_after_connect_timeout_is_closed(green: dict[str, Any]) -> None:
    seen = observed(green, "late_connection_closed")
    assert seen["outcome"] == "ConnectTimeout"
    assert green["delayed_answered"] >= 1, "the late connection never reached the server"
    assert seen["sessions"] == 0
    assert seen["current_size"] == 0


def test_resize_serves_a_waiter_at_once(green: dict[str, Any]) -> None:
    seen = observed(green, "resize_serves_waiters")
    assert (seen["waiting_before"], seen["waiting_after"]) == (1, 0)
    assert (seen["max_size"], seen["current_size"], seen["distinct"]) == (2, 2, True)


def test_idle_connections_past_max_idle_are_closed(green: dict[str, Any]) -> None:
    seen = observed(green, "idle_timer")
    assert (seen["before"], seen["after"], seen["idle"]) == (1, 0, 0)


def test_tpooled_queries_let_other_green_threads_run(green: dict[str, Any]) -> None:
    seen = observed(green, "queries_yield")
    assert seen["TpooledConnectionPool"] >= 10, seen
    assert seen["RawConnectionPool"] <= 2, seen  # mysqlclient blocks the hub, as upstream


def test_a_base_exception_from_cleanup_passes_the_slot_to_a_waiter(
    green: dict[str, Any],
) -> None:
    seen = observed(green, "base_exception_in_cleanup")
    assert seen["raised"] == "KeyboardInterrupt"
    assert (seen["waiter_row"], seen["current_size"]) == (1, 1)


@pytest.mark.parametrize(
    "flavour", ["eventlet", "compat", "compat-patched"], ids=lambda flavour: flavour
)
def test_the_founding_idiom_runs_unchanged(flavour: str, servers: dict[str, Server]) -> None:
    source = (SCENARIOS / "founding_idiom.py").read_text()
    if flavour.startswith("compat"):
        swapped = "from dbapi_pool.compat import eventlet_db_pool as db_pool"
        assert "from eventlet import db_pool\n" in source
        source = source.replace("from eventlet import db_pool\n", swapped + "\n")
    prelude = WARNINGS_OFF
    if flavour.endswith("patched"):
        prelude += "; import eventlet; eventlet.monkey_patch()"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{prelude}; exec(compile(__import__('sys').stdin.read(), 'idiom', 'exec'))",
        ],
        input=source,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "False", "1", "4", "1"], done.stdout
    assert not done.stderr, done.stderr


def test_the_native_pools_shortcuts_are_not_in_the_drop_in() -> None:
    """eventlet's db_pool has no execute()/fetchone()...: the drop-in hides the native
    pools' (its connection() takes no tag), naming where they are."""
    import sqlite3

    from dbapi_pool.compat import eventlet_db_pool

    pool = eventlet_db_pool.RawConnectionPool(sqlite3, database=":memory:")
    try:
        for name in ("execute", "fetchone", "fetchall", "fetchval"):
            assert not hasattr(pool, name)
        with pytest.raises(AttributeError, match=r"no fetchval\(\).*dbapi_pool.ConnectionPool"):
            pool.fetchval("SELECT 1")
    finally:
        pool.clear()
