"""Profile of the standard library's sqlite3."""

from __future__ import annotations

from typing import Any

from .base import DriverProfile


def _interrupt(connect: Any, conn: Any, session_id: Any) -> None:
    # sqlite3's interrupt() is meant to be called from another thread.
    conn.interrupt()


# sqlite3.connect() is a C function without a readable signature: its keywords (3.11-3.13).
_SQLITE3_KEYWORDS = frozenset(
    {
        "database",
        "timeout",
        "detect_types",
        "isolation_level",
        "check_same_thread",
        "factory",
        "cached_statements",
        "uri",
        "autocommit",
    }
)

__all__ = ["SQLITE3"]

# sqlite3 refuses, by default, a connection used from a thread other than its creator. The
# pool already guarantees one user at a time, and the module is built serialized
# (threadsafety 3 on CPython 3.11+), so handing a connection from thread to thread is safe.
SQLITE3 = DriverProfile(
    name="sqlite3",
    url_keys={"database": "database"},
    defaults={"check_same_thread": False},
    cancel=_interrupt,
    transaction_idle=lambda conn: not conn.in_transaction,
    takes_keyword=_SQLITE3_KEYWORDS.__contains__,
)
