"""A no-op DB-API 2.0 driver for compare.py: the pool's own cost, with no database behind it.

``connect()``, ``cursor()``, ``execute()``, ``fetchone()``, ``commit()``, ``rollback()`` and
``close()`` do nothing, except that ``connect(delay=s)`` gives connections whose ``execute()``
sleeps ``s`` seconds (S2's 1 ms query). The module itself is the driver: pass it to a pool
as you would ``psycopg2``.
"""

from __future__ import annotations

import time
from typing import Any

apilevel = "2.0"
#: Connections may be shared between threads (not cursors), as psycopg2's.
threadsafety = 2
paramstyle = "qmark"


class Error(Exception):
    """Base of the driver's errors (DB-API 2.0)."""


class Warning(Exception):
    """Important warnings (DB-API 2.0)."""


class InterfaceError(Error):
    """An error of the driver itself (DB-API 2.0)."""


class DatabaseError(Error):
    """An error of the database (DB-API 2.0)."""


class OperationalError(DatabaseError):
    """The database's operation failed (DB-API 2.0)."""


class InternalError(DatabaseError):
    """The database is in a bad state (DB-API 2.0)."""


class ProgrammingError(DatabaseError):
    """A bad statement (DB-API 2.0)."""


class IntegrityError(DatabaseError):
    """A constraint failed (DB-API 2.0)."""


class DataError(DatabaseError):
    """Bad data (DB-API 2.0)."""


class NotSupportedError(DatabaseError):
    """Not supported (DB-API 2.0)."""


ROW = (1,)


class Cursor:
    """Run nothing and fetch one constant row."""

    __slots__ = ()

    def execute(self, operation: str, parameters: Any = None) -> None:
        """Do nothing."""

    def fetchone(self) -> tuple[int]:
        """Return ``(1,)``."""
        return ROW

    def close(self) -> None:
        """Do nothing."""


class SleepingCursor(Cursor):
    """Sleep ``delay`` seconds in ``execute()``: a query of known duration."""

    __slots__ = ("_delay",)

    def __init__(self, delay: float) -> None:
        self._delay = delay

    def execute(self, operation: str, parameters: Any = None) -> None:
        """Sleep, releasing the GIL as a driver waiting for the server would."""
        time.sleep(self._delay)


class TransactionInfo:
    """Answer ``conn.info.transaction_status`` as psycopg2 does for an idle session."""

    transaction_status = 0


class Connection:
    """Hand out one reusable cursor; commit, roll back and close at no cost."""

    __slots__ = ("_cursor", "closed")

    info = TransactionInfo()

    def __init__(self, delay: float) -> None:
        self._cursor = SleepingCursor(delay) if delay else Cursor()
        self.closed = 0

    def cursor(self) -> Cursor:
        """Return the connection's cursor."""
        return self._cursor

    def commit(self) -> None:
        """Do nothing."""

    def rollback(self) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Mark the connection closed."""
        self.closed = 1


def connect(delay: float = 0.0, **ignored: Any) -> Connection:
    """Return a new connection whose ``execute()`` takes ``delay`` seconds."""
    return Connection(delay)


def _register_profile() -> None:
    # Like psycopg2, this driver can tell that a session has no transaction open, and
    # psycopg2's pool (a peer here) reads that to skip its rollback on return. Declaring
    # it to dbapi_pool is what the user of any such driver would do (DriverProfile).
    try:
        from dbapi_pool import DriverProfile, register_profile
    except ImportError:  # the peers' rows run without dbapi_pool too
        return
    register_profile(
        DriverProfile(
            name=__name__,
            transaction_idle=lambda conn: conn.info.transaction_status == 0,
            # Its cursors, like psycopg2's client-side ones, close without I/O.
            local_close=lambda cursor: True,
        )
    )


_register_profile()
