"""The PEP 249 exception classes of the fake driver (re-exported by ``fakedb``)."""

from __future__ import annotations

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
]


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
