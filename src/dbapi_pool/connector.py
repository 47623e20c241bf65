"""DatabaseConnector and AsyncDatabaseConnector: pools of pools, one per (host, database)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._async import AsyncConnectionPool
from ._base import PoolBase
from ._core import Holder
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
    class. Each pool is named ``host/database`` (``name:host/database`` under a ``name``
    given to the connector), so that metrics tell them apart. The database keyword suits
    the driver (``db`` for MySQLdb, ``database`` for PyMySQL, ``dbname`` for psycopg).
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
        #: Listeners of every pool, those made later too (``add_listener``).
        self._listeners: list[Any] = []

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
        # Each pool gets its own name (metrics label it by name): a ``name`` given to the
        # connector prefixes its pools' names.
        prefix = self._settings.get("name")
        kwargs["name"] = f"{host}/{dbname}" if prefix is None else f"{prefix}:{host}/{dbname}"
        with self._lock:
            listeners = list(self._listeners)
        kwargs["listeners"] = [*(self._settings.get("listeners") or ()), *listeners]
        # Created outside the lock: with min_size > 0 a constructor connects, and one slow
        # host must not hold up the others. A racing creator's pool is dropped unused.
        created = self.conn_pool(self.module, **kwargs)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None and not self._closed:
                self._pools[key] = pool = created
                for listener in self._listeners:  # one added meanwhile (add is idempotent)
                    created.add_listener(listener)
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

    def add_listener(self, listener: Any) -> None:
        """Tell ``listener`` of the events of every pool of this connector, including the
        pools made later (each event names its pool)."""
        with self._lock:
            if any(known is listener for known in self._listeners):
                return
            pools = list(self._pools.values())
            for pool in pools:  # checked by the first pool: a bad one is not kept
                pool.add_listener(listener)
            self._listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        """Stop telling ``listener`` of the events of this connector's pools."""
        with self._lock:
            if not any(known is listener for known in self._listeners):
                raise ValueError(f"{listener!r} is not a listener of this connector")
            self._listeners = [known for known in self._listeners if known is not listener]
            pools = list(self._pools.values())
        for pool in pools:
            pool.remove_listener(listener)

    def holders(self) -> dict[tuple[str, str], list[Holder]]:
        """Return who holds connections, by ``(host, database)`` (pools with none left
        out): see ``ConnectionPool.holders()``."""
        found = {key: pool.holders() for key, pool in self.pools().items()}
        return {key: holders for key, holders in found.items() if holders}

    def _matching(self, host: str | None, dbname: str | None) -> list[PoolT]:
        """Return the pools of ``host`` and ``dbname`` (``None``: any); refuse if closed.

        A name that matches no pool is an error (``UnknownHost``): a typo must not pass
        for a pool with nothing to do.
        """
        if self._closed:
            raise self._closed_error()
        pools = [
            pool
            for (pool_host, pool_db), pool in self.pools().items()
            if host in (None, pool_host) and dbname in (None, pool_db)
        ]
        if not pools and (host is not None or dbname is not None):
            raise UnknownHost(
                f"no pool for host={host!r} dbname={dbname!r} (created: {sorted(self.pools())})"
            )
        return pools

    def _resizable(
        self, min_size: int | None, max_size: int | None, host: str | None, dbname: str | None
    ) -> list[PoolT]:
        """Return the matching pools once the new sizes passed every pool's validation
        (all of them change, or none)."""
        pools = self._matching(host, dbname)
        sizes = {"min_size": min_size, "max_size": max_size}
        changes = {name: size for name, size in sizes.items() if size is not None}
        for pool in pools:
            pool.config.replace(**changes)
        return pools

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

    # -- runtime control, over every pool or one host's (or one database's) ----------------

    def resize(
        self,
        min_size: int | None = None,
        max_size: int | None = None,
        *,
        host: str | None = None,
        dbname: str | None = None,
    ) -> None:
        """Resize the pools created so far (``host``/``dbname``: only theirs).

        See :meth:`ConnectionPool.resize`; pools created later keep the connector's
        settings. A bad size raises ``ValueError`` before any pool changes.
        """
        pools = self._resizable(min_size, max_size, host, dbname)
        for pool in pools:
            pool.resize(min_size, max_size)

    def drain(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Replace every open connection of the pools (after a failover, say)."""
        for pool in self._matching(host, dbname):
            pool.drain()

    def pause(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Pause the pools: checkouts wait (bounded by their timeout) until resume()."""
        for pool in self._matching(host, dbname):
            pool.pause()

    def resume(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Resume paused pools; callers that waited are served in order."""
        for pool in self._matching(host, dbname):
            pool.resume()

    def check(self, *, host: str | None = None, dbname: str | None = None) -> int:
        """Check every idle connection of the pools; return how many were dead."""
        return sum(pool.check() for pool in self._matching(host, dbname))

    def wait_ready(
        self, timeout: float = 30.0, *, host: str | None = None, dbname: str | None = None
    ) -> None:
        """Return once every pool has ``min_size`` connections open (``PoolTimeout``
        after ``timeout`` seconds in all)."""
        deadline = time.monotonic() + timeout
        for pool in self._matching(host, dbname):
            pool.wait_ready(max(0.0, deadline - time.monotonic()))

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
    ``await connector.close()`` closes them all. ``resize()``, ``drain()``, ``pause()``,
    ``resume()``, ``check()`` and ``wait_ready()`` act on every pool created so far, or
    on one host's or one database's.
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

    # -- runtime control, over every pool or one host's (or one database's) ----------------

    async def resize(
        self,
        min_size: int | None = None,
        max_size: int | None = None,
        *,
        host: str | None = None,
        dbname: str | None = None,
    ) -> None:
        """Resize the pools created so far (``host``/``dbname``: only theirs).

        See :meth:`AsyncConnectionPool.resize`; pools created later keep the connector's
        settings. A bad size raises ``ValueError`` before any pool changes.
        """
        pools = self._resizable(min_size, max_size, host, dbname)
        for pool in pools:
            await pool.resize(min_size, max_size)

    async def drain(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Replace every open connection of the pools (after a failover, or once new
        credentials are in place for ``connect_args``)."""
        await asyncio.gather(*(pool.drain() for pool in self._matching(host, dbname)))

    def pause(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Pause the pools: checkouts wait (bounded by their timeout) until resume()."""
        for pool in self._matching(host, dbname):
            pool.pause()

    def resume(self, *, host: str | None = None, dbname: str | None = None) -> None:
        """Resume paused pools; tasks that waited are served in order."""
        for pool in self._matching(host, dbname):
            pool.resume()

    async def check(self, *, host: str | None = None, dbname: str | None = None) -> int:
        """Check every idle connection of the pools at once; return how many were dead."""
        found = await asyncio.gather(*(p.check() for p in self._matching(host, dbname)))
        return sum(found)

    async def wait_ready(
        self, timeout: float = 30.0, *, host: str | None = None, dbname: str | None = None
    ) -> None:
        """Return once every pool has ``min_size`` connections open (``PoolTimeout``
        after ``timeout`` seconds)."""
        pools = self._matching(host, dbname)
        await asyncio.gather(*(pool.wait_ready(timeout) for pool in pools))

    async def __aenter__(self) -> AsyncDatabaseConnector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
