"""SQLite through Django's own backend, its connections checked out of a dbapi-pool pool.

An in-memory database is never given back (Django's SQLite backend never closes it).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base as django_base
from django.db.backends.sqlite3.creation import DatabaseCreation as DjangoCreation
from django.utils.asyncio import async_unsafe

from dbapi_pool.django.pooling import PoolClosingCreation, PooledDatabaseWrapper

__all__ = ["DatabaseCreation", "DatabaseWrapper"]


class DatabaseCreation(PoolClosingCreation, DjangoCreation):
    """Django's SQLite test database creation, closing the pools before a drop or clone."""


class DatabaseWrapper(PooledDatabaseWrapper, django_base.DatabaseWrapper):
    """Django's SQLite ``DatabaseWrapper``; with ``OPTIONS["pool"]``, pooled."""

    creation_class = DatabaseCreation

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Check a connection out of the pool (or connect, when pooling is off)."""
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        conn = self.checkout(pool)
        # Django's set-up of each new connection, at each checkout as Django runs it at
        # each connect (``init_command`` may depend on the settings of the moment).
        django_base.register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA legacy_alter_table = OFF")
        for init_command in self.init_commands:
            if init_command := init_command.strip():
                conn.execute(init_command)
        return conn
