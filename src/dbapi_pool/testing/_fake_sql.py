"""What the fake driver understands of SQL, and the record of what its connections do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ._fake_errors import ProgrammingError

__all__ = [
    "DML",
    "TRANSACTION_ENDS",
    "TRANSACTION_STARTS",
    "Column",
    "LogEntry",
    "Params",
    "Row",
    "first_keyword",
    "sleep_seconds",
]

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]
Column = tuple[str, None, None, None, None, None, None]

TRANSACTION_STARTS = ("INSERT", "UPDATE", "DELETE", "CREATE", "BEGIN")
TRANSACTION_ENDS = ("COMMIT", "ROLLBACK")
DML = ("INSERT", "UPDATE", "DELETE")


class LogEntry(NamedTuple):
    """Record one call that reached the fake database (a plain tuple to compare against)."""

    serial: int
    method: str
    args: tuple[Any, ...]


def first_keyword(sql: str) -> str:
    """Return the first word of ``sql``, upper-cased ("" for empty SQL)."""
    words = sql.split(None, 1)
    return words[0].upper() if words else ""


def sleep_seconds(sql: str) -> float:
    """Return the duration of a ``SLEEP <seconds>`` statement, 0.0 for any other."""
    words = sql.split()
    if not words or words[0].upper() != "SLEEP":
        return 0.0
    try:
        (seconds,) = (float(word) for word in words[1:])
    except ValueError:
        raise ProgrammingError(f"fakedb: bad SLEEP statement: {sql!r}") from None
    return seconds
