"""The fake driver's cursor: runs statements through its connection, serves the rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._fake_errors import InterfaceError, ProgrammingError
from ._fake_sql import DML, Column, Params, Row, first_keyword

if TYPE_CHECKING:
    from ._fake_connection import FakeConnection

__all__ = ["FakeCursor"]


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
        self.rowcount = len(all_params) if first_keyword(sql) in DML else -1
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
            self.rowcount = 1 if first_keyword(sql) in DML else -1
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
