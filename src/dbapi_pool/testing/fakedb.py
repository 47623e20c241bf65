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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple

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

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]
Column = tuple[str, None, None, None, None, None, None]

_TRANSACTION_STARTS = ("INSERT", "UPDATE", "DELETE", "CREATE", "BEGIN")
_TRANSACTION_ENDS = ("COMMIT", "ROLLBACK")
_DML = ("INSERT", "UPDATE", "DELETE")


class Warning(Exception):  # shadows the builtin, as PEP 249 requires
    """Signal an important warning, such as data truncation."""


class Error(Exception):
    """Signal any fakedb error: the base class of all the others."""


class InterfaceError(Error):
    """Signal misuse of the interface, such as using a closed connection or cursor."""


class DatabaseError(Error):
    """Signal an error of the (fake) database."""


class DataError(DatabaseError):
    """Signal a problem with the processed data."""


class OperationalError(DatabaseError):
    """Signal a failure of the database's operation: refused connect, lost connection."""


class IntegrityError(DatabaseError):
    """Signal a violated relational constraint."""


class InternalError(DatabaseError):
    """Signal an internal error of the database."""


class ProgrammingError(DatabaseError):
    """Signal a programming error: bad SQL, wrong thread, nothing to fetch."""


class NotSupportedError(DatabaseError):
    """Signal use of an API the database does not support."""


class LogEntry(NamedTuple):
    """Record one call that reached the fake database (a plain tuple to compare against)."""

    serial: int
    method: str
    args: tuple[Any, ...]


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
        if _keyword(sql) == "SELECT":
            return [(1,)]
        return None


class FakeConnection:
    """Act as a DB-API connection to a :class:`FakeDatabase`; create it with ``connect()``."""

    def __init__(
        self,
        database: FakeDatabase,
        serial: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        """Create connection number ``serial`` (call ``FakeDatabase.connect`` instead)."""
        self.database = database
        self.serial = serial
        self.args = args
        self.kwargs = kwargs
        self.thread_id = threading.get_ident()
        self.check_same_thread = database.thread_affinity and bool(
            kwargs.get("check_same_thread", True)
        )
        self.closed = False
        self.dead = False
        self.in_transaction = False
        self.commits = 0
        self.rollbacks = 0
        self._running: set[threading.Event] = set()

    def __repr__(self) -> str:
        """Show the serial number and the state."""
        state = "closed" if self.closed else "dead" if self.dead else "open"
        return f"<FakeConnection #{self.serial} {state}>"

    def __enter__(self) -> FakeConnection:
        """Return the connection itself, which stays open after the block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit if the block succeeded, else roll back (like sqlite3); do not close."""
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def cursor(self) -> FakeCursor:
        """Return a new cursor on this connection."""
        self._call("cursor", ())
        return FakeCursor(self)

    def commit(self) -> None:
        """End the transaction, if any, and count the commit."""
        self._end_transaction("commit")

    def rollback(self) -> None:
        """Abandon the transaction, if any, and count the rollback."""
        self._end_transaction("rollback")

    def close(self) -> None:
        """Close the connection, even a dead one; closing it again does nothing."""
        with self.database.lock:
            self._check_thread()
            if self.closed:
                return
            self.closed = True
            self.database.closes += 1
            self.database.log.append(LogEntry(self.serial, "close", ()))

    def kill(self) -> None:
        """Mark the connection dead: every later call but ``close()`` raises.

        A statement running in another thread is interrupted and raises
        :class:`OperationalError` too.
        """
        with self.database.lock:
            self.dead = True
            for event in self._running:
                event.set()

    def cancel(self) -> None:
        """Interrupt the statement running on this connection, from any thread.

        The interrupted ``execute`` raises ``OperationalError("fakedb: query cancelled")``.
        Nothing happens if no statement is running.
        """
        with self.database.lock:
            self._check_state()
            for event in self._running:
                event.set()

    def _check_thread(self) -> None:
        """Raise ProgrammingError if thread affinity is on and this is a foreign thread."""
        current = threading.get_ident()
        if self.check_same_thread and current != self.thread_id:
            raise ProgrammingError(
                f"fakedb: connection created in thread {self.thread_id} used in thread {current}"
            )

    def _check_state(self) -> None:
        """Raise InterfaceError if closed, OperationalError if dead."""
        if self.closed:
            raise InterfaceError("fakedb: connection already closed")
        if self.dead:
            raise OperationalError("fakedb: server closed the connection")

    def _check(self) -> None:
        """Check the thread, then the state (call it under the database's lock)."""
        self._check_thread()
        self._check_state()

    def _call(self, method: str, args: tuple[Any, ...]) -> None:
        """Check that the connection is usable and log the call."""
        with self.database.lock:
            self._check()
            self.database.log.append(LogEntry(self.serial, method, args))

    def _end_transaction(self, method: str) -> None:
        """Check, log and count a ``commit`` or ``rollback``, and end the transaction."""
        with self.database.lock:
            self._check()
            self.database.log.append(LogEntry(self.serial, method, ()))
            self.in_transaction = False
            if method == "commit":
                self.commits += 1
            else:
                self.rollbacks += 1

    def _run(self, method: str, sql: str, args: tuple[Any, ...]) -> list[Row] | None:
        """Carry out one statement: delay, special SQL, transaction state; return its rows."""
        event = threading.Event()
        with self.database.lock:
            self._check()
            self.database.log.append(LogEntry(self.serial, method, args))
            self._running.add(event)
        try:
            delay = self.database.query_delay + _sleep_seconds(sql)
            if delay > 0:
                event.wait(delay)
        finally:
            with self.database.lock:
                self._running.discard(event)
        if self.dead:
            raise OperationalError("fakedb: server closed the connection")
        if event.is_set():
            raise OperationalError("fakedb: query cancelled")
        keyword = _keyword(sql)
        if keyword == "FAIL":
            raise ProgrammingError(f"fakedb: statement failed: {sql!r}")
        with self.database.lock:
            if keyword in _TRANSACTION_STARTS:
                self.in_transaction = True
            elif keyword in _TRANSACTION_ENDS:
                self.in_transaction = False
        if keyword == "SLEEP":
            return None
        return self.database._rows_for(sql)


class FakeCursor:
    """Act as a DB-API cursor of a :class:`FakeConnection`; create it with ``cursor()``."""

    arraysize: int = 1

    def __init__(self, connection: FakeConnection) -> None:
        """Create a cursor on ``connection`` (call ``FakeConnection.cursor`` instead)."""
        self.connection = connection
        self.closed = False
        self.description: tuple[Column, ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Row] | None = None

    def __enter__(self) -> FakeCursor:
        """Return the cursor itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the cursor."""
        self.close()

    def __iter__(self) -> Iterator[Row]:
        """Return the cursor, which iterates over the remaining rows."""
        return self

    def __next__(self) -> Row:
        """Return the next row, or stop when there is none left."""
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        """Close the cursor; closing it again does nothing."""
        self.closed = True
        self._rows = None

    def execute(self, sql: str, params: Params | None = None) -> FakeCursor:
        """Run ``sql`` and keep its result set, if any; return the cursor."""
        self._start()
        rows = self.connection._run("execute", sql, (sql, params))
        self._set_rows(rows, sql)
        return self

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> FakeCursor:
        """Run ``sql`` once per parameter set (one delay, one log entry); keep no rows."""
        self._start()
        all_params = list(seq_of_params)
        self.connection._run("executemany", sql, (sql, all_params))
        self.rowcount = len(all_params) if _keyword(sql) in _DML else -1
        return self

    def fetchone(self) -> Row | None:
        """Return the next row, or None when there is none left."""
        rows = self._result()
        return rows.pop(0) if rows else None

    def fetchmany(self, size: int | None = None) -> list[Row]:
        """Return up to ``size`` (default ``arraysize``) of the next rows."""
        rows = self._result()
        count = self.arraysize if size is None else size
        taken = rows[:count]
        del rows[:count]
        return taken

    def fetchall(self) -> list[Row]:
        """Return all the remaining rows."""
        rows = self._result()
        taken = rows[:]
        rows.clear()
        return taken

    def setinputsizes(self, sizes: Any) -> None:
        """Do nothing, as PEP 249 allows."""

    def setoutputsize(self, size: Any, column: int | None = None) -> None:
        """Do nothing, as PEP 249 allows."""

    def _check(self) -> None:
        """Raise InterfaceError if the cursor or its connection is closed."""
        if self.closed:
            raise InterfaceError("fakedb: cursor already closed")
        if self.connection.closed:
            raise InterfaceError("fakedb: connection already closed")

    def _start(self) -> None:
        """Check the cursor and forget the previous result set."""
        self._check()
        self._rows = None
        self.description = None
        self.rowcount = -1

    def _set_rows(self, rows: list[Row] | None, sql: str) -> None:
        """Keep the result set ``rows`` (None: the statement had none)."""
        self._rows = rows
        if rows is None:
            self.rowcount = 1 if _keyword(sql) in _DML else -1
            return
        width = len(rows[0]) if rows else 0
        self.description = tuple(
            (f"col{i}", None, None, None, None, None, None) for i in range(width)
        )
        self.rowcount = len(rows)

    def _result(self) -> list[Row]:
        """Return the remaining rows; raise ProgrammingError if there is no result set."""
        self._check()
        if self._rows is None:
            raise ProgrammingError("fakedb: no results to fetch")
        return self._rows


def _keyword(sql: str) -> str:
    """Return the first word of ``sql``, upper-cased ("" for empty SQL)."""
    words = sql.split(None, 1)
    return words[0].upper() if words else ""


def _sleep_seconds(sql: str) -> float:
    """Return the duration of a ``SLEEP <seconds>`` statement, 0.0 for any other."""
    words = sql.split()
    if not words or words[0].upper() != "SLEEP":
        return 0.0
    try:
        (seconds,) = (float(word) for word in words[1:])
    except ValueError:
        raise ProgrammingError(f"fakedb: bad SLEEP statement: {sql!r}") from None
    return seconds


default = FakeDatabase()
"""The database behind the module-level :func:`connect`."""


def connect(*args: Any, **kwargs: Any) -> FakeConnection:
    """Open a connection to the module's :data:`default` database."""
    return default.connect(*args, **kwargs)
