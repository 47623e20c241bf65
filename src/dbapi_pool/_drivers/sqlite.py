"""Profile of the standard library's sqlite3."""

from __future__ import annotations

from .base import DriverProfile

__all__ = ["SQLITE3"]

# sqlite3 refuses, by default, a connection used from a thread other than its creator. The
# pool already guarantees one user at a time, and the module is built serialized
# (threadsafety 3 on CPython 3.11+), so handing a connection from thread to thread is safe.
SQLITE3 = DriverProfile(
    name="sqlite3",
    url_keys={"database": "database"},
    defaults={"check_same_thread": False},
)
