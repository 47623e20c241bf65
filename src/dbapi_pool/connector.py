"""DatabaseConnector and AsyncDatabaseConnector: pools of pools, one per (host, database)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._async import AsyncConnectionPool
from ._base import PoolBase
from ._drivers import profile_for
from ._sync import ConnectionPool
from .errors import PoolClosed, UnknownHost

__all__ = ["AsyncDatabaseConnector", "DatabaseConnector"]

PoolT = TypeVar("PoolT", bound=PoolBase)


class _Connector(Generic[PoolT]):
    """Keep one pool per ``(host, database)``, created on first use (thread-safe).

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
        conn_pool: type[PoolT],
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
        self._pools: dict[tuple[str, str], PoolT] = {}
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

    def get(self, host: str, dbname: str) -> PoolT:
        """Return the pool for ``(host, dbname)``, creating it on first use."""
        key = (host, dbname)
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        if self._closed:
            raise self._closed_error()
        kwargs: dict[str, Any] = {
            **self._settings,
            "host": host,
            self._database_kwarg: dbname,
            **self.credentials_for(host),
        }
        kwargs.setdefault("name", f"{host}/{dbname}")
        # Created outside the lock: with min_size > 0 a constructor connects, and one slow
        # host must not hold up the others. A racing creator's pool is dropped unused.
        created = self.conn_pool(self.module, **kwargs)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None and not self._closed:
                self._pools[key] = pool = created
        if pool is not created:
            self._discard(created)
        if pool is None:
            raise self._closed_error()
        return pool

    def _discard(self, pool: PoolT) -> None:
        """Drop a pool that lost the race to be created.

        Nothing to do for an async pool: it opens nothing before its first use.
        """

    def _closed_error(self) -> PoolClosed:
        return PoolClosed(f"{type(self).__name__} of {len(self._pools)} pools is closed")

    def pools(self) -> dict[tuple[str, str], PoolT]:
        """Return a copy of the pools created so far, by ``(host, database)``."""
        with self._lock:
            return dict(self._pools)

    def _close_all(self) -> list[PoolT]:
        with self._lock:
            self._closed = True
            return list(self._pools.values())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._pools)} pools, hosts={sorted(self.credentials)}>"


class DatabaseConnector(_Connector[ConnectionPool]):
    __doc__ = _Connector.__doc__

    def __init__(
        self,
        module: Any,
        credentials: Mapping[str, Mapping[str, Any]],
        conn_pool: type[ConnectionPool] = ConnectionPool,
        **pool_settings: Any,
    ) -> None:
        super().__init__(module, credentials, conn_pool, **pool_settings)

    def _discard(self, pool: ConnectionPool) -> None:
        pool.close()

    def close(self) -> None:
        """Close every pool; the connector creates no more."""
        for pool in self._close_all():
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


class AsyncDatabaseConnector(_Connector[AsyncConnectionPool]):
    """Keep one :class:`AsyncConnectionPool` per ``(host, database)``; the same rules.

    ``get(host, dbname)`` returns the pool at once (it opens on first use, in its loop);
    ``await connector.close()`` closes them all; ``drain()`` and ``check()`` act on every
    pool created so far.
    """

    def __init__(
        self,
        module: Any,
        credentials: Mapping[str, Mapping[str, Any]],
        conn_pool: type[AsyncConnectionPool] = AsyncConnectionPool,
        **pool_settings: Any,
    ) -> None:
        super().__init__(module, credentials, conn_pool, **pool_settings)

    async def close(self) -> None:
        """Close every pool; the connector creates no more."""
        for pool in self._close_all():
            await pool.close()

    async def drain(self) -> None:
        """Drain every pool created so far (``AsyncConnectionPool.drain()``), one by one.

        After a failover, or once new credentials are in place for ``connect_args``.
        """
        for pool in self.pools().values():
            await pool.drain()

    async def check(self) -> None:
        """Check every pool's idle connections (``AsyncConnectionPool.check()``) at once."""
        await asyncio.gather(*(pool.check() for pool in self.pools().values()))

    async def __aenter__(self) -> AsyncDatabaseConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
