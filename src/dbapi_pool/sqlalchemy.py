"""A SQLAlchemy pool class over dbapi-pool: ``create_engine(url, poolclass=Pool, ...)``.

``dbapi_pool.sqlalchemy.Pool`` is a drop-in for SQLAlchemy's ``QueuePool``::

    from sqlalchemy import create_engine
    from dbapi_pool.sqlalchemy import Pool

    engine = create_engine(
        "postgresql+psycopg2://app@db/orders",
        poolclass=Pool, pool_size=8, max_overflow=2, pool_timeout=30,
        pool_recycle=1800, pool_pre_ping=True,
        dbapi_pool={"max_idle": 60, "leak_timeout": 120},
    )

How it fits: the items dbapi-pool pools are SQLAlchemy's own connection records
(``_ConnectionRecord``), not raw driver connections. dbapi-pool's ``connect()`` makes a
record (which connects through the engine's creator and fires ``first_connect`` and
``connect``), and dbapi-pool's ``close()`` of an item closes the record (which fires
``close``). Everything SQLAlchemy does to a checked-out connection (``checkout``,
``checkin`` and ``reset`` events, reset on return, ``pool_pre_ping``, invalidation on a
disconnect, soft invalidation) stays SQLAlchemy's code, unchanged; dbapi-pool decides
only who gets which record and when one is closed: FIFO hand-off to waiters, the checkout
timeout naming the holders, ``max_idle``, ``max_age`` with jitter, fork safety, leak
detection, ``stats()``, ``holders()``, listeners and metrics. The other way (dbapi-pool
owning the raw connections, records mapped onto them) was rejected: a record reconnects
in place (pre-ping, recycle, pool-wide invalidation), which would leave dbapi-pool holding
a closed connection it believes alive.

Mapping of ``create_engine`` options:

- ``pool_size`` + ``max_overflow`` (default 10) -> ``max_size``: dbapi-pool has one bound,
  so the server never sees more than ``pool_size + max_overflow`` sessions. An overflow
  connection is not closed at once on return (QueuePool closes it): it stays idle until
  ``max_idle``. ``pool_size=0`` or ``max_overflow=-1`` (no limit) is refused.
- ``pool_timeout`` -> ``timeout``; expiry raises ``sqlalchemy.exc.TimeoutError`` (code
  ``3o7r``, as QueuePool) chained from dbapi-pool's ``PoolTimeout``, whose message (names
  the holders, counts) it keeps.
- ``pool_recycle`` -> ``max_age`` (jittered, 0-5 % shorter); ``-1`` (the default) means
  no age limit, as in SQLAlchemy.
- ``pool_pre_ping``, ``pool_reset_on_return``, ``pool_events``, ``echo_pool``,
  ``pool_logging_name``: SQLAlchemy's, as with QueuePool. ``pool_use_lifo`` is accepted
  and has no effect: idle connections are always reused newest first, waiters always
  served first come, first served.
- ``dbapi_pool={...}``: any other dbapi-pool setting (``max_idle``, ``min_size``,
  ``leak_timeout``, ``max_waiting``, ``listeners``, ``name``, ``handoff_after``,
  ``max_connecting``, ``connect_timeout``...). Settings SQLAlchemy owns here are refused
  with an error naming the ``create_engine`` option to use instead.

What differs from QueuePool: ``dispose()`` drains (idle connections are closed now, those
checked out when they come back; QueuePool keeps those); an invalidated record is
discarded rather than reconnected in place (a fresh record takes its slot, firing
``connect`` again); idle connections close after ``max_idle`` (dbapi-pool's default,
10 s). ``connect_timeout`` is off unless set: with it, connects run in a helper thread.
A connection never closed, caught in a reference cycle, comes back from SQLAlchemy's
garbage-collection hook; a collection may run while this very thread holds dbapi-pool's
(non-reentrant) lock, so a return made during a collection is only queued (lock-free) and
put back at the next checkout or return (``QueuePool`` uses a reentrant lock instead).
``create_async_engine`` is not supported: an asyncio dialect connects through SQLAlchemy's
greenlet bridge, which must run on the event loop's thread, while dbapi-pool's
``AsyncConnectionPool`` opens connections in threads it owns, and the blocking
``ConnectionPool`` would stall the loop while waiting; so an async dialect is refused.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import weakref
from collections import deque
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import Pool as SAPool
from sqlalchemy.pool.base import _ConnectionRecord

from dbapi_pool import ConnectionPool, DriverProfile, PoolStats, PoolTimeout, register_profile
from dbapi_pool.holders import skip_in_sites

__all__ = ["Pool"]

#: The name dbapi-pool knows the records by (not a module name: it cannot clash with one).
_MODULE_NAME = "sqlalchemy-records"

#: dbapi-pool settings that SQLAlchemy owns here, and the create_engine option to use.
_OWNED = {
    "max_size": "pool_size and max_overflow",
    "timeout": "pool_timeout",
    "max_age": "pool_recycle",
    "pre_ping": "pool_pre_ping",
    "reset": "pool_reset_on_return",
    "check": "pool_pre_ping or a 'checkout' event",
    "check_idle_after": "pool_pre_ping",
    "keepalive": "pool_pre_ping",
    "configure": "a 'connect' event",
    "connect_args": "create_engine(connect_args=...)",
}


class _Item:
    """What dbapi-pool pools: one SQLAlchemy connection record (no driver calls here)."""

    __slots__ = ("__weakref__", "proxy", "record")

    def __init__(self, record: Any) -> None:
        self.record = record
        #: dbapi-pool's proxy while the record is checked out.
        self.proxy: Any = None

    def close(self) -> None:
        """Close the record's connection (fires SQLAlchemy's ``close`` event)."""
        self.record.close()

    def rollback(self) -> None:
        """Do nothing: SQLAlchemy resets the connection before it checks it in."""

    def __repr__(self) -> str:  # never the driver connection's repr (it may show a DSN)
        return f"<SQLAlchemy connection record at {id(self.record):#x}>"


def _invalidated(item: _Item) -> bool:
    """Tell whether SQLAlchemy invalidated the record (hard, soft, or pool-wide)."""
    record = item.record
    test = getattr(record, "_is_hard_or_soft_invalidated", None)
    return record.dbapi_connection is None if test is None else bool(test())


register_profile(
    DriverProfile(
        name=_MODULE_NAME,
        reset=_Item.rollback,
        is_broken=_invalidated,
        # The records' driver calls are SQLAlchemy's, made where the caller runs.
        cooperates=lambda backend, patched: True,
    )
)


class _Records:
    """The "driver module" of the inner pool: its ``connect()`` makes a record."""

    __name__ = _MODULE_NAME

    def __init__(self, pool: Pool) -> None:
        self._pool = weakref.ref(pool)

    def connect(self) -> _Item:
        """Make a connection record of the SQLAlchemy pool (it connects, firing events)."""
        pool = self._pool()
        if pool is None:
            raise sa_exc.InvalidRequestError("the SQLAlchemy pool is gone")
        return _Item(_ConnectionRecord(pool))


def _max_size(pool_size: int, max_overflow: int) -> int:
    if pool_size <= 0 or max_overflow < 0:
        raise ValueError(
            "dbapi_pool.sqlalchemy.Pool: SQLAlchemy's pool_size must be > 0 and "
            f"max_overflow >= 0 (got pool_size={pool_size}, max_overflow={max_overflow}): "
            "dbapi-pool always bounds the number of connections"
        )
    return pool_size + max_overflow


def _inner_settings(settings: dict[str, Any] | None, dialect: Any) -> dict[str, Any]:
    """Check the ``dbapi_pool`` settings; add the defaults this integration needs."""
    given = dict(settings or {})
    for setting, option in _OWNED.items():
        if setting in given:
            raise TypeError(
                f"dbapi_pool.sqlalchemy.Pool: the dbapi-pool setting {setting!r} is "
                f"SQLAlchemy's here; use create_engine's {option} instead"
            )
    name = getattr(dialect, "name", None)
    given.setdefault("name", f"sqlalchemy:{name}" if name else "sqlalchemy")
    given.setdefault("connect_timeout", None)
    return given


def _refuse_async(dialect: Any) -> None:
    if getattr(dialect, "is_async", False):
        raise sa_exc.ArgumentError(
            "dbapi_pool.sqlalchemy.Pool cannot pool the asyncio driver "
            f"{getattr(dialect, 'driver', '?')!r} of SQLAlchemy's create_async_engine: "
            "use SQLAlchemy's AsyncAdaptedQueuePool (see docs/sqlalchemy.md)"
        )


class _Collecting:
    """Whether a garbage collection is running (``gc.callbacks``). Process-wide, not per
    thread: a thread-local written from a collection run while gevent finalizes a
    greenlet fails ("greenlet is being finalized"), and another thread seeing the flag
    during a collection only defers its return to the next checkout (harmless)."""

    active = False


def _gc_phase(phase: str, info: dict[str, Any]) -> None:
    _Collecting.active = phase == "start"


gc.callbacks.append(_gc_phase)


class Pool(SAPool):
    """A SQLAlchemy pool whose checkouts are dbapi-pool's (see the module docstring).

    ``pool_size + max_overflow`` bounds the connections, ``timeout`` (``pool_timeout``)
    bounds each wait, ``recycle`` (``pool_recycle``) is dbapi-pool's ``max_age``;
    ``dbapi_pool`` holds any other dbapi-pool setting. The rest is SQLAlchemy's ``Pool``.
    """

    _is_asyncio = False

    def __init__(
        self,
        creator: Any,
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float = 30.0,
        use_lifo: bool = False,
        recycle: int = -1,
        dbapi_pool: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        _refuse_async(kw.get("dialect"))
        max_size = _max_size(pool_size, max_overflow)
        settings = _inner_settings(dbapi_pool, kw.get("dialect"))
        # SQLAlchemy's own recycle stays off: dbapi-pool's max_age (jittered) does it.
        super().__init__(creator, recycle=-1, **kw)
        self._pool_size, self._max_overflow, self._timeout = pool_size, max_overflow, timeout
        self._use_lifo, self._recycle_setting, self._settings = use_lifo, recycle, settings
        #: The items lent, by record (a record knows nothing of its item).
        self._lent: dict[Any, _Item] = {}
        #: Records returned during a garbage collection, put back later (lock-free).
        self._returned_in_gc: deque[Any] = deque()
        try:
            self._inner = ConnectionPool(
                _Records(self),
                max_size=max_size,
                timeout=timeout,
                max_age=None if recycle < 0 else recycle,
                reset=None,
                pre_ping=False,
                check_idle_after=None,
                offload=False,
                **settings,
            )
        except (TypeError, ValueError) as error:
            raise sa_exc.ArgumentError(
                f"dbapi_pool.sqlalchemy.Pool (SQLAlchemy poolclass): {error}"
            ) from error

    @property
    def dbapi_pool(self) -> ConnectionPool:
        """Return the dbapi-pool ``ConnectionPool`` underneath (stats, holders, listeners)."""
        return self._inner

    def stats(self) -> PoolStats:
        """Return dbapi-pool's snapshot of this pool's counters and timings."""
        return self._inner.stats()

    def holders(self) -> list[Any]:
        """Return who holds each checked-out connection (dbapi-pool's ``holders()``)."""
        return self._inner.holders()

    def _do_get(self) -> Any:
        if self._returned_in_gc:
            self._put_back_collected()
        try:
            proxy = self._inner.get()
        except PoolTimeout as timed_out:
            raise sa_exc.TimeoutError(str(timed_out), code="3o7r") from timed_out
        item = proxy.raw
        item.proxy = proxy
        self._lent[item.record] = item
        return item.record

    def _do_return_conn(self, record: Any) -> None:
        if _Collecting.active:  # this thread may hold the pool's lock right now
            self._returned_in_gc.append(record)
            return
        if self._returned_in_gc:
            self._put_back_collected()
        self._put_back(record)

    def _put_back(self, record: Any) -> None:
        item = self._lent.pop(record, None)
        if item is not None:
            proxy, item.proxy = item.proxy, None
            self._inner.put(proxy)

    def _put_back_collected(self) -> None:
        """Put back the records a garbage collection returned (outside the collection)."""
        while self._returned_in_gc:
            try:
                record = self._returned_in_gc.popleft()
            except IndexError:  # another thread took the last one
                return
            self._put_back(record)

    def recreate(self) -> Pool:
        """Return a new pool of the same settings and events (``Engine.dispose()``)."""
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            timeout=self._timeout,
            use_lifo=self._use_lifo,
            recycle=self._recycle_setting,
            dbapi_pool=self._settings,
            pre_ping=self._pre_ping,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """Close the idle connections now, the checked-out ones when they come back."""
        if not self._inner.closed:
            self._inner.drain()
        self.logger.info("Pool disposed. %s", self.status())

    def status(self) -> str:
        """Describe the pool as QueuePool does (size, idle, overflow, checked out)."""
        return (
            f"Pool size: {self.size()}  Connections in pool: {self.checkedin()} "
            f"Current Overflow: {self.overflow()} Current Checked out "
            f"connections: {self.checkedout()}"
        )

    def size(self) -> int:
        """Return ``pool_size``."""
        return self._pool_size

    def timeout(self) -> float:
        """Return ``pool_timeout``."""
        return self._timeout

    def checkedin(self) -> int:
        """Return how many connections are idle."""
        return self._inner.stats().idle

    def checkedout(self) -> int:
        """Return how many connections are checked out."""
        return self._inner.stats().in_use

    def overflow(self) -> int:
        """Return how many open connections exceed ``pool_size`` (negative: room left)."""
        stats = self._inner.stats()
        return stats.idle + stats.in_use - self._pool_size


#: The SQLAlchemy modules between the application and ``_do_get()`` (Core and ORM).
_LAYERS = (
    "sqlalchemy.engine.base",
    "sqlalchemy.pool.base",
    "sqlalchemy.orm.session",
    "sqlalchemy.orm.state_changes",  # the decorator around SessionTransaction's methods
)


class _Code:
    """Stand for a function whose code is all there is (a closure made at call time)."""

    def __init__(self, code: Any) -> None:
        self.__code__ = code


def _nested(code: Any) -> list[_Code]:
    """Return the code of the functions defined inside ``code`` (at any depth)."""
    found = []
    for const in code.co_consts:
        if inspect.iscode(const):
            found.append(_Code(const))
            found.extend(_nested(const))
    return found


def _skip_sqlalchemy_frames() -> None:
    """Make a holder's site the application's line that checked out (engine.connect(),
    a Session's query), not SQLAlchemy's or this module's."""
    functions: list[Any] = [Pool._do_get]
    for name in _LAYERS:
        for cls in vars(importlib.import_module(name)).values():
            if inspect.isclass(cls) and cls.__module__ == name:
                for member in vars(cls).values():
                    function = getattr(member, "__func__", member)  # classmethods too
                    if inspect.isfunction(function):
                        functions.append(function)
                        functions.extend(_nested(inspect.unwrap(function).__code__))
    skip_in_sites(*functions)


_skip_sqlalchemy_frames()
