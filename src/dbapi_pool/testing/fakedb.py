"""A fake DB-API 2.0 (PEP 249) driver for tests, standard library only.

A :class:`FakeDatabase` instance behaves like a driver module, so it can be handed to
anything that expects one (``ConnectionPool(FakeDatabase())``). Its knobs make connects
slow or failing and queries slow, and it records everything its connections do::

    db = FakeDatabase(fail_connects=1, query_delay=0.01)
    conn = db.connect()  # raises OperationalError: the first connect is refused
    conn = db.connect()
    conn.cursor().execute("SELECT 1")
    assert db.log[-1] == (1, "execute", ("SELECT 1", None))

Special statements: ``SLEEP <seconds>`` sleeps in ``execute`` (``cancel()`` or ``kill()``
from another thread interrupts it), ``FAIL`` raises :class:`ProgrammingError`, statements
starting with INSERT, UPDATE, DELETE, CREATE or BEGIN open a transaction, and COMMIT or
ROLLBACK end it. Any other statement returns the rows in ``FakeDatabase.results`` for its
exact text, else ``[(1,)]`` if it starts with SELECT, else no result set.

``import dbapi_pool.testing.fakedb as fakedb`` also works as a driver module: its
``connect()`` uses the module's :data:`default` database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from ._fake_connection import FakeConnection
from ._fake_cursor import FakeCursor
from ._fake_errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from ._fake_sql import LogEntry, Row, first_keyword

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "FakeConnection",
    "FakeCursor",
    "FakeDatabase",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "LogEntry",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "apilevel",
    "connect",
    "default",
    "paramstyle",
    "threadsafety",
]

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

# The classes live in private modules (one per responsibility) but are public here:
# name them by this module, so reprs, error messages and tracebacks show the public path.
for _public in (
    DataError,
    DatabaseError,
    Error,
    FakeConnection,
    FakeCursor,
    IntegrityError,
    InterfaceError,
    InternalError,
    LogEntry,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
):
    _public.__module__ = __name__
del _public


class FakeDatabase:
    """Act as a DB-API driver module whose connections a test can slow, break and observe.

    Every constructor argument is also a plain attribute that may be changed at any time.
    The observation attributes (``connections``, ``connects``, ``log``...) are guarded by
    ``lock``; read them while no other thread is connecting, or under the lock.
    """

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    apilevel = "2.0"
    paramstyle = "qmark"
    __name__: str

    def __init__(
        self,
        *,
        connect_delay: float = 0.0,
        fail_connects: int = 0,
        connect_error: BaseException | None = None,
        query_delay: float = 0.0,
        thread_affinity: bool = False,
        threadsafety: int = 1,
        name: str = "fakedb",
        results: Mapping[str, list[Row]] | None = None,
    ) -> None:
        """Create an empty database with the given knobs."""
        self.connect_delay = connect_delay
        self.fail_connects = fail_connects
        self.connect_error = connect_error
        self.query_delay = query_delay
        self.thread_affinity = thread_affinity
        self.threadsafety = threadsafety
        self.__name__ = name
        self.results: dict[str, list[Row]] = dict(results or {})
        self.lock = threading.Lock()
        self.connections: list[FakeConnection] = []
        self.connects = 0
        self.connect_attempts = 0
        self.closes = 0
        self.max_open = 0
        self.log: list[LogEntry] = []

    def __repr__(self) -> str:
        """Show the name and the number of open connections."""
        return f"<FakeDatabase {self.__name__!r} open={len(self.open_connections)}>"

    @property
    def open_connections(self) -> list[FakeConnection]:
        """Return the connections made and not yet closed (dead ones included)."""
        with self.lock:
            return [conn for conn in self.connections if not conn.closed]

    def connect(self, *args: Any, **kwargs: Any) -> FakeConnection:
        """Open a connection, after ``connect_delay``, unless a failure knob refuses it.

        ``connect_error`` (if set) is raised by every attempt; otherwise, while
        ``fail_connects`` is positive, it is decremented and the attempt raises
        :class:`OperationalError`. Only successful connects are logged and counted in
        ``connects``; every attempt is counted in ``connect_attempts``.
        """
        with self.lock:
            self.connect_attempts += 1
        if self.connect_delay > 0:
            time.sleep(self.connect_delay)
        with self.lock:
            if self.connect_error is not None:
                raise self.connect_error
            if self.fail_connects > 0:
                self.fail_connects -= 1
                raise OperationalError("fakedb: connection refused")
            conn = FakeConnection(self, len(self.connections) + 1, args, kwargs)
            self.connections.append(conn)
            self.connects += 1
            open_now = sum(1 for c in self.connections if not c.closed)
            self.max_open = max(self.max_open, open_now)
            self.log.append(LogEntry(conn.serial, "connect", (args, kwargs)))
        return conn

    def kill_all(self) -> int:
        """Mark every open connection dead, as a server restart would; return how many."""
        victims = self.open_connections
        for conn in victims:
            conn.kill()
        return len(victims)

    def _rows_for(self, sql: str) -> list[Row] | None:
        """Return the rows ``sql`` produces, or None when it produces no result set."""
        with self.lock:
            rows = self.results.get(sql)
        if rows is not None:
            return list(rows)
        if first_keyword(sql) == "SELECT":
            return [(1,)]
        return None


default = FakeDatabase()
"""The database behind the module-level :func:`connect`."""


def connect(*args: Any, **kwargs: Any) -> FakeConnection:
    """Open a connection to the module's :data:`default` database."""
    return default.connect(*args, **kwargs)
