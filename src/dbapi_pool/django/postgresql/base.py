"""PostgreSQL through Django's own backend (psycopg 3, or psycopg2 when psycopg is absent,
as Django picks), its connections checked out of a dbapi-pool pool."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as django_base
from django.db.backends.postgresql.psycopg_any import IsolationLevel, is_psycopg3
from django.utils.asyncio import async_unsafe

from dbapi_pool.django.pooling import PooledDatabaseWrapper

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(PooledDatabaseWrapper, django_base.DatabaseWrapper):
    """Django's PostgreSQL ``DatabaseWrapper``; with ``OPTIONS["pool"]``, pooled."""

    def pool_connect_overrides(self) -> dict[str, Any]:
        """Connect psycopg 3 in autocommit mode, as Django's pool does (Django sets the
        mode it wants after each checkout)."""
        return {"autocommit": True} if is_psycopg3 else {}

    def _choose_isolation_level(self) -> bool:
        """Set ``self.isolation_level`` as Django does; tell whether to set it on the
        connection (only when ``OPTIONS["isolation_level"]`` asks for one)."""
        try:
            value = self.settings_dict["OPTIONS"]["isolation_level"]
        except KeyError:
            self.isolation_level = IsolationLevel.READ_COMMITTED
            return False
        try:
            self.isolation_level = IsolationLevel(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {value} "
                f"specified. Use one of the psycopg.IsolationLevel values."
            ) from None
        return True

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Check a connection out of the pool (or connect, when pooling is off)."""
        pool = self.pool
        if pool is None:
            return super().get_new_connection(conn_params)
        set_isolation_level = self._choose_isolation_level()
        connection = self.checkout(pool)
        if set_isolation_level:
            connection.isolation_level = self.isolation_level
        if not is_psycopg3:
            # As Django: a dummy loads() saves psycopg2's jsonb decode round trip.
            django_base.psycopg2.extras.register_default_jsonb(
                conn_or_curs=connection, loads=lambda x: x
            )
        return connection

    def init_connection_state(self) -> None:
        """Run Django's set-up, and its time zone and role at every checkout (Django's
        own pool runs them only on new connections, through psycopg_pool's hook)."""
        super().init_connection_state()
        if self.connection is not None and self._pooled is not None:
            commit = self._configure_connection(self.connection)
            if commit and not self.get_autocommit():
                self.connection.commit()
