"""The fake driver's connection: its state, its knobs' effects and what it logs."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._fake_cursor import FakeCursor
from ._fake_errors import InterfaceError, OperationalError, ProgrammingError
from ._fake_sql import (
    TRANSACTION_ENDS,
    TRANSACTION_STARTS,
    LogEntry,
    Row,
    first_keyword,
    sleep_seconds,
)

if TYPE_CHECKING:
    from .fakedb import FakeDatabase

__all__ = ["FakeConnection"]


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
            delay = self.database.query_delay + sleep_seconds(sql)
            if delay > 0:
                event.wait(delay)
        finally:
            with self.database.lock:
                self._running.discard(event)
        if self.dead:
            raise OperationalError("fakedb: server closed the connection")
        if event.is_set():
            raise OperationalError("fakedb: query cancelled")
        keyword = first_keyword(sql)
        if keyword == "FAIL":
            raise ProgrammingError(f"fakedb: statement failed: {sql!r}")
        with self.database.lock:
            if keyword in TRANSACTION_STARTS:
                self.in_transaction = True
            elif keyword in TRANSACTION_ENDS:
                self.in_transaction = False
        if keyword == "SLEEP":
            return None
        return self.database._rows_for(sql)
