"""Driver profiles, found by the DB-API module's name and overridable by the user."""

from __future__ import annotations

import threading
from typing import Any

from .base import SECRET_KWARGS, DriverProfile, rollback
from .mysql import MYSQLDB, PYMYSQL
from .postgres import PG8000, PSYCOPG, PSYCOPG2
from .sqlite import SQLITE3

__all__ = [
    "SECRET_KWARGS",
    "DriverProfile",
    "module_name",
    "profile_for",
    "profile_named",
    "register_profile",
    "rollback",
]

_registry: dict[str, DriverProfile] = {
    profile.name: profile for profile in (PSYCOPG2, PSYCOPG, PG8000, MYSQLDB, PYMYSQL, SQLITE3)
}
_registry_lock = threading.Lock()


def module_name(module: Any) -> str:
    """Return the top-level name of a DB-API module (``MySQLdb`` for ``MySQLdb.connections``)."""
    name = getattr(module, "__name__", None) or type(module).__name__
    return str(name).split(".")[0]


def profile_for(module: Any) -> DriverProfile:
    """Return the profile registered for ``module``, or a generic one named after it."""
    return profile_named(module_name(module))


def profile_named(name: str) -> DriverProfile:
    """Return the profile registered for the module called ``name``, or a generic one."""
    profile = _registry.get(name)
    return profile if profile is not None else DriverProfile(name=name)


def register_profile(profile: DriverProfile) -> None:
    """Register (or replace) the profile used for the module named ``profile.name``."""
    with _registry_lock:
        _registry[profile.name] = profile
