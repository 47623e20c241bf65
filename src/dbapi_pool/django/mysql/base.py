"""MySQL / MariaDB through Django's own backend (mysqlclient, or PyMySQL installed as
MySQLdb), its connections checked out of a dbapi-pool pool."""

from __future__ import annotations

from typing import Any

from django.db.backends.mysql import base as django_base
from django.db.backends.mysql.creation import DatabaseCreation as DjangoCreation
from django.utils.asyncio import async_unsafe

from dbapi_pool.django.pooling import PoolClosingCreation, PooledDatabaseWrapper

__all__ = ["DatabaseCreation", "DatabaseWrapper"]


class DatabaseCreation(PoolClosingCreation, DjangoCreation):
    """Django's MySQL test database creation, closing the pools before a drop or clone."""


class DatabaseWrapper(PooledDatabaseWrapper, django_base.DatabaseWrapper):
    """Django's MySQL ``DatabaseWrapper``; with ``OPTIONS["pool"]``, pooled."""

    creation_class = DatabaseCreation

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Check a connection out of the pool (or connect, when pooling is off)."""
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        connection = self.checkout(pool)
        # As Django: mysqlclient's bytes encoder does not work (PyMySQL/mysqlclient#489).
        if connection.encoders.get(bytes) is bytes:
            connection.encoders.pop(bytes)
        return connection
