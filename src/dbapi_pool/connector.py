"""DatabaseConnector: a pool of pools, one per (host, database)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._drivers import profile_for
from ._sync import ConnectionPool
from .errors import PoolClosed, UnknownHost

__all__ = ["DatabaseConnector"]


class DatabaseConnector:
    """Keep one pool per ``(host, database)``, created on first use.

    ``credentials`` maps a host name to the ``connect()`` keywords for it (user, password,
    port...); the ``'default'`` entry serves hosts without their own. Other keywords are
    pool settings (or connect keywords) given to every pool; ``conn_pool`` is the pool
    class. The database keyword suits the driver (``db`` for MySQLdb, ``database`` for
    PyMySQL, ``dbname`` for psycopg).
    """

    def __init__(
        self,
        module: Any,
        credentials: Mapping[str, Mapping[str, Any]],
        conn_pool: type[ConnectionPool] = ConnectionPool,
        **pool_settings: Any,
    ) -> None:
        if not isinstance(credentials, Mapping):
            raise TypeError(
                "credentials must map host names to connect() keywords, "
                f"got {type(credentials).__name__}"
            )
        self.module = module
        self.credentials = credentials
        self.conn_pool = conn_pool
        self._settings = pool_settings
        self._database_kwarg = profile_for(module).database_kwarg
        self._pools: dict[tuple[str, str], ConnectionPool] = {}
        self._lock = threading.Lock()
        self._closed = False

    def credentials_for(self, host: str) -> dict[str, Any]:
        """Return the connect keywords for ``host``: its own entry, else ``'default'``."""
        found = self.credentials.get(host)
        if found is None:
            found = self.credentials.get("default")
        if found is None:
            raise UnknownHost(
                f"no credentials for host {host!r} and no 'default' entry "
                f"(known hosts: {sorted(self.credentials)})"
            )
        return dict(found)

    def get(self, host: str, dbname: str) -> ConnectionPool:
        """Return the pool for ``(host, dbname)``, creating it on first use."""
        key = (host, dbname)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        if self._closed:
            raise PoolClosed(f"connector of {len(self._pools)} pools is closed")
        kwargs: dict[str, Any] = {
            **self._settings,
            "host": host,
            self._database_kwarg: dbname,
            **self.credentials_for(host),
        }
        kwargs.setdefault("name", f"{host}/{dbname}")
        # Created outside the lock: with min_size > 0 the constructor connects, and one slow
        # host must not hold up the others. A racing creator's pool is closed unused.
        created = self.conn_pool(self.module, **kwargs)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None and not self._closed:
                self._pools[key] = pool = created
                created = None  # type: ignore[assignment]
        if created is not None:
            created.close()
        if pool is None:
            raise PoolClosed(f"connector of {len(self._pools)} pools is closed")
        return pool

    def pools(self) -> dict[tuple[str, str], ConnectionPool]:
        """Return a copy of the pools created so far, by ``(host, database)``."""
        with self._lock:
            return dict(self._pools)

    def close(self) -> None:
        """Close every pool; the connector creates no more."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()

    def __enter__(self) -> DatabaseConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<DatabaseConnector {len(self._pools)} pools, hosts={sorted(self.credentials)}>"
