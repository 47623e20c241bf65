"""Helpers for the integration tests: the drivers, the servers, and how to watch them.

Every pool a test makes is marked so that the server can tell its connections from the
ones of any other test running at the same time:

- PostgreSQL: each pool gets its own ``application_name`` (``dbapi_pool_test_<uuid>``),
  counted in ``pg_stat_activity`` from a separate monitoring connection;
- MariaDB: sessions cannot carry a marker here (one user, no performance_schema), so the
  tests record each pooled session's ``CONNECTION_ID()`` (run through the pool) and look
  those ids up in ``information_schema.PROCESSLIST``;
- sqlite3: a "session" is the driver's connection object (``conn.raw``); it is gone once
  that object is closed.

A missing driver or an unreachable server fails the test (``pytest.fail``), never skips it.
"""

from __future__ import annotations

import importlib
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

__all__ = [
    "DRIVERS",
    "NETWORK_DRIVERS",
    "Blackhole",
    "Database",
    "DriverSpec",
    "driver_params",
    "free_port",
    "scalar",
    "wait_until",
]

POSTGRES = "postgres"
MARIADB = "mariadb"
SQLITE = "sqlite"

_SERVER_NAMES = {
    POSTGRES: "PostgreSQL at 127.0.0.1:5432 (user postgres, database test)",
    MARIADB: "MariaDB at 127.0.0.1:3306 (user root, empty password, database test)",
}


@dataclass(frozen=True)
class DriverSpec:
    """One DB-API driver under test: its module, its server and how to reach it."""

    name: str  # the module's name, also the test id
    server: str  # POSTGRES, MARIADB or SQLITE
    base_kwargs: Mapping[str, Any] = field(default_factory=dict)
    #: Dotted name of the error its connect() raises when nothing listens on the port.
    refused_error: str | None = None
    #: ConnectionPool.from_url URL; ``{path}`` is the sqlite file.
    url: str = ""

    def import_module(self) -> ModuleType:
        """Import the driver, failing the test (not skipping it) if it is missing."""
        try:
            return importlib.import_module(self.name)
        except ImportError as exc:
            pytest.fail(
                f"driver {self.name!r} is not installed in this environment ({exc}); "
                "the integration tests need every driver (pip install 'dbapi-pool[test]')",
                pytrace=False,
            )

    def resolve(self, dotted: str) -> Any:
        """Return the object named ``module.attr`` (an exception class of the driver)."""
        module_name, _, attr = dotted.rpartition(".")
        return getattr(importlib.import_module(module_name), attr)


DRIVERS: dict[str, DriverSpec] = {
    spec.name: spec
    for spec in (
        DriverSpec(
            "psycopg2",
            POSTGRES,
            {"host": "127.0.0.1", "user": "postgres", "dbname": "test"},
            "psycopg2.OperationalError",
            "postgresql+psycopg2://postgres@127.0.0.1:5432/test",
        ),
        DriverSpec(
            "psycopg",
            POSTGRES,
            {"host": "127.0.0.1", "user": "postgres", "dbname": "test"},
            "psycopg.OperationalError",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test",
        ),
        DriverSpec(
            "pg8000",
            POSTGRES,
            {"host": "127.0.0.1", "user": "postgres", "database": "test"},
            "pg8000.InterfaceError",
            "postgresql+pg8000://postgres@127.0.0.1:5432/test",
        ),
        DriverSpec(
            "MySQLdb",
            MARIADB,
            {"host": "127.0.0.1", "user": "root", "passwd": "", "db": "test"},
            "MySQLdb.OperationalError",
            "mysql+mysqldb://root@127.0.0.1:3306/test",
        ),
        DriverSpec(
            "pymysql",
            MARIADB,
            {"host": "127.0.0.1", "user": "root", "password": "", "database": "test"},
            "pymysql.OperationalError",
            "mysql+pymysql://root@127.0.0.1:3306/test",
        ),
        DriverSpec("sqlite3", SQLITE, {}, None, "sqlite:///{path}"),
    )
}

NETWORK_DRIVERS = tuple(name for name, spec in DRIVERS.items() if spec.server != SQLITE)

_MARKS = {POSTGRES: [pytest.mark.postgres], MARIADB: [pytest.mark.mariadb], SQLITE: []}


def driver_params(*names: str) -> list[Any]:
    """Return ``pytest.param``s for these drivers (default: all), with the server marks."""
    return [
        pytest.param(name, id=name, marks=_MARKS[DRIVERS[name].server])
        for name in (names or tuple(DRIVERS))
    ]


def wait_until(check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``check()`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def scalar(conn: Any, sql: str) -> Any:
    """Run ``sql`` on a (pooled) connection and return the first column of the first row."""
    cur = conn.cursor()
    try:
        cur.execute(sql)
        row = cur.fetchone()
    finally:
        cur.close()
    assert row is not None, f"no row from {sql!r}"
    return row[0]


def free_port() -> int:
    """Return a loopback TCP port on which nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Blackhole:
    """A loopback TCP listener that accepts connections and never says a word.

    Accepted sockets stay open until :meth:`close`, so a client stuck reading the server's
    greeting stays stuck (until its own timeout) rather than seeing the connection drop.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(sock)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()
        for sock in self.accepted:
            sock.close()


class Database:
    """One driver's view of its real server, for one test.

    Makes marked pools (closed at the end of the test), per-test tables (dropped at the
    end), and answers questions about sessions from a separate monitoring connection.
    """

    def __init__(self, spec: DriverSpec, tmp_path: Path) -> None:
        self.spec = spec
        self.server = spec.server
        self.module = spec.import_module()
        self.sqlite_path = tmp_path / "integration.sqlite"
        self._pools: list[ConnectionPool] = []
        self._cleanups: list[Callable[[], object]] = []
        self._tables: list[str] = []
        self._monitor_lock = threading.Lock()
        self._monitor: Any = self._open_monitor()

    # -- connections and pools ------------------------------------------------------------

    @staticmethod
    def new_marker() -> str:
        """Return a fresh marker (a PostgreSQL application_name) unique to the caller."""
        return f"dbapi_pool_test_{uuid.uuid4().hex}"

    def connect_kwargs(self, marker: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Return the driver's connect() keywords for the test server (plus ``overrides``)."""
        kwargs = dict(self.spec.base_kwargs)
        if self.server == SQLITE:
            kwargs["database"] = str(self.sqlite_path)
        if self.server == POSTGRES and marker is not None:
            kwargs["application_name"] = marker
        kwargs.update(overrides)
        return kwargs

    def make_pool(
        self,
        *,
        marker: str | None = None,
        connect: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> ConnectionPool:
        """Make a pool on the test server; it is closed at the end of the test.

        ``marker``: the PostgreSQL application_name (default: a fresh one, also stored on
        the pool as ``pool.test_marker``); ``connect``: connect() keywords to override.
        """
        marker = marker or self.new_marker()
        kwargs = {**self.connect_kwargs(marker, **(connect or {})), **settings}
        pool = self.track(ConnectionPool(self.module, **kwargs))
        pool.test_marker = marker  # type: ignore[attr-defined]
        return pool

    def track(self, pool: ConnectionPool) -> ConnectionPool:
        """Close ``pool`` at the end of the test."""
        self._pools.append(pool)
        return pool

    def defer(self, cleanup: Callable[[], object]) -> None:
        """Call ``cleanup()`` at the end of the test, before the pools are closed."""
        self._cleanups.append(cleanup)

    # -- sessions on the server -----------------------------------------------------------

    def session_id(self, conn: Any) -> Any:
        """Identify the server session behind a pooled connection.

        The backend pid (PostgreSQL), the CONNECTION_ID() (MariaDB), or the sqlite3
        connection object itself.
        """
        if self.server == SQLITE:
            return conn.raw
        if self.server == POSTGRES:
            return scalar(conn, "SELECT pg_backend_pid()")
        return scalar(conn, "SELECT CONNECTION_ID()")

    def alive_count(self, sessions: Iterable[Any]) -> int:
        """Count how many of these sessions the server still has."""
        sessions = list(sessions)
        if not sessions:
            return 0
        if self.server == SQLITE:
            return sum(_sqlite_open(conn) for conn in sessions)
        marks = ", ".join(["%s"] * len(sessions))
        if self.server == POSTGRES:
            sql = f"SELECT count(*) FROM pg_stat_activity WHERE pid IN ({marks})"
        else:
            sql = f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID IN ({marks})"
        return int(self.monitor_query(sql, [int(s) for s in sessions])[0][0])

    def is_alive(self, session: Any) -> bool:
        return self.alive_count([session]) == 1

    def wait_gone(self, sessions: Iterable[Any], timeout: float = 5.0) -> bool:
        """Poll the server until none of these sessions exists (up to ``timeout`` s)."""
        sessions = list(sessions)
        return wait_until(lambda: self.alive_count(sessions) == 0, timeout)

    def marker_count(self, marker: str) -> int:
        """Count the PostgreSQL sessions whose application_name is ``marker``."""
        assert self.server == POSTGRES, "markers are PostgreSQL application names"
        sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        return int(self.monitor_query(sql, [marker])[0][0])

    def in_transaction(self, session: Any) -> bool:
        """Tell whether the session has a transaction open, as the server sees it."""
        if self.server == SQLITE:
            return bool(session.in_transaction)
        if self.server == POSTGRES:
            rows = self.monitor_query(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", [int(session)]
            )
            return bool(rows) and str(rows[0][0]).startswith("idle in transaction")
        rows = self.monitor_query(
            "SELECT count(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
            [int(session)],
        )
        return int(rows[0][0]) > 0

    def wait_in_transaction(self, session: Any, expected: bool, timeout: float = 5.0) -> bool:
        """Poll until :meth:`in_transaction` says ``expected``.

        MariaDB refreshes INNODB_TRX only when it went unread for 0.1 s, so polling faster
        than that would keep reading a stale cache: poll it every 0.25 s.
        """
        interval = 0.25 if self.server == MARIADB else 0.05
        return wait_until(lambda: self.in_transaction(session) == expected, timeout, interval)

    # -- tables ---------------------------------------------------------------------------

    def create_table(self, columns: str = "v integer") -> str:
        """Create an empty table unique to this test (dropped at the end); return its name."""
        name = f"dbapi_pool_t_{uuid.uuid4().hex[:16]}"
        engine = " ENGINE=InnoDB" if self.server == MARIADB else ""
        self.monitor_execute(f"CREATE TABLE {name} ({columns}){engine}")
        self._tables.append(name)
        return name

    def committed_rows(self, table: str) -> int:
        """Count the committed rows of ``table``, as another session sees them."""
        return int(self.monitor_query(f"SELECT count(*) FROM {table}")[0][0])

    # -- the monitoring connection --------------------------------------------------------

    def _open_monitor(self) -> Any:
        if self.server == SQLITE:
            return sqlite3.connect(str(self.sqlite_path), check_same_thread=False)
        kwargs = self.connect_kwargs()
        if self.server == POSTGRES:
            kwargs["application_name"] = "dbapi_pool_test_monitor"
        try:
            conn = self.module.connect(**kwargs)
        except Exception as exc:
            pytest.fail(
                f"cannot reach {_SERVER_NAMES[self.server]} with {self.spec.name}: "
                f"{type(exc).__name__}: {str(exc).strip()}. "
                "The integration tests need this server.",
                pytrace=False,
            )
        cur = conn.cursor()
        try:
            # Never wait long on a lock (dropping a table a failed test left locked).
            if self.server == POSTGRES:
                cur.execute("SET lock_timeout = '3s'")
            else:
                cur.execute("SET SESSION lock_wait_timeout = 3")
        finally:
            cur.close()
        conn.commit()
        return conn

    def monitor_query(self, sql: str, params: list[Any] | None = None) -> list[Any]:
        """Run a query on the monitoring connection; end its transaction (fresh snapshots)."""
        with self._monitor_lock:
            conn = self._monitor
            cur = conn.cursor()
            try:
                if params:
                    cur.execute(sql, params)
                else:
                    cur.execute(sql)
                return list(cur.fetchall())
            finally:
                cur.close()
                conn.rollback()

    def monitor_execute(self, sql: str) -> None:
        """Run a statement on the monitoring connection and commit it."""
        with self._monitor_lock:
            conn = self._monitor
            cur = conn.cursor()
            try:
                cur.execute(sql)
            finally:
                cur.close()
            conn.commit()

    # -- end of test ----------------------------------------------------------------------

    def close(self) -> None:
        errors: list[str] = []
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                errors.append(f"cleanup {cleanup!r}: {exc!r}")
        for pool in self._pools:
            try:
                pool.close()
            except Exception as exc:
                errors.append(f"closing {pool!r}: {exc!r}")
        for table in self._tables:
            try:
                self.monitor_execute(f"DROP TABLE IF EXISTS {table}")
            except Exception as exc:
                errors.append(f"dropping {table}: {exc!r}")
                try:
                    self._monitor.rollback()
                except Exception:
                    pass
        try:
            self._monitor.close()
        except Exception:
            pass
        if errors:
            pytest.fail("integration cleanup failed: " + "; ".join(errors), pytrace=False)


def _sqlite_open(conn: sqlite3.Connection) -> bool:
    try:
        conn.total_changes  # noqa: B018  (raises once the connection is closed)
    except sqlite3.ProgrammingError:
        return False
    return True


def calls_beside_a_gil_waiter(call: Callable[[], Any], times: int) -> tuple[set[Any], int]:
    """Make ``call`` ``times`` times while another thread waits for the GIL; return the set of
    answers and how often that thread ran meanwhile (0: ``call`` never let the GIL go).

    The other thread gives the GIL up at once each time it runs, and the switch interval is
    raised so that the GIL changes hands only when let go.
    """
    runs, stop = [0], threading.Event()

    def other() -> None:
        while not stop.is_set():
            runs[0] += 1
            time.sleep(0)  # gives the GIL up at once

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    thread = threading.Thread(target=other, daemon=True)
    try:
        thread.start()
        while runs[0] < 3:  # it runs, and now waits for the GIL
            time.sleep(0.001)
        before = runs[0]
        answers = {call() for _ in range(times)}
        during = runs[0] - before
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        thread.join(10)
    return answers, during
