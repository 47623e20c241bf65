"""Reproduce eventlet's ``db_pool`` module (0.41.3) on dbapi-pool's pool core.

``from dbapi_pool.compat import eventlet_db_pool as db_pool`` stands in for
``from eventlet import db_pool``: same names, signatures, defaults and attributes. The pools
are :class:`dbapi_pool.ConnectionPool` subclasses on the eventlet backend: a blocked
``get()`` parks only its green thread (monkey-patched or not), waiters are served first come
first served, ``TpooledConnectionPool`` runs the driver's calls in eventlet's tpool and
``RawConnectionPool`` calls the driver directly. (A driver that cooperates with the hub by
itself, like psycopg2 after ``monkey_patch()``, is called directly by both.)

A caller holds a :class:`PooledConnectionWrapper` whose ``_base`` is the connection as
upstream had it: the driver's own, or for ``TpooledConnectionPool`` an offloading view of it
(upstream's was a ``tpool.Proxy``; ours runs a whole statement per hop and reads buffered
rows locally; ``_obj`` is the driver's). ``free_items`` holds these objects, newest first,
as a fresh snapshot at each access (``clear()`` closes them). Settings may be assigned, as
upstream's attributes could (``pool.max_size = 8`` is ``resize(8)``).

Where upstream is silent or broken (none of its defects is reproduced):

- ``put(None)`` frees the slot of one checkout that will not come back: one whose wrapper
  was just dropped (garbage-collected: its connection is closed), else one taken off its
  wrapper by ``_unwrap_connection`` (its caller keeps that connection), else the oldest one
  out, which is *detached*: its holder may go on using it, it leaves ``current_size``, and
  it is closed when it comes back. With nothing out it does nothing.
- A wrapper of another pool is accepted by handing it to the pool it came from. A wrapper
  already returned is ignored. Anything else this pool did not hand out (a raw connection
  of nobody's, or one already idle here) is logged and left alone: counts stay right.
- A dropped wrapper's connection is closed and its slot freed; a cleanup that raises
  closes the connection (a ``BaseException`` still frees the slot); a connection finishing
  after ``connect_timeout`` is closed; a failed connect passes its slot on to the next
  waiter; an idle connection found dead is not handed out; nothing is printed.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from .._core.holders import skip_in_sites
from .._drivers import profile_for
from .._sync import ConnectionPool as _CorePool
from ._eventlet_parts import (
    ConnectTimeout,
    DatabaseConnector,
    GenericConnectionWrapper,
    PooledConnectionWrapper,
    _Conn,
    _data,
    _open,
    _Tpool,
    _TpooledConnection,
    cleanup_rollback,
)

if TYPE_CHECKING:  # the core's objects pass through this layer, never made or read here
    from .._core import Entry, Plan

__all__ = [
    "BaseConnectionPool",
    "ConnectTimeout",
    "ConnectionPool",
    "DatabaseConnector",
    "GenericConnectionWrapper",
    "PooledConnectionWrapper",
    "RawConnectionPool",
    "TpooledConnectionPool",
    "cleanup_rollback",
]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic
_MISSING: Any = object()  # no cleanup argument: use the pool's


def _setting(name: str, doc: str) -> Any:
    return property(
        lambda pool: pool._compat_settings[name],
        lambda pool, v: pool._compat_reconfigure(name, v),
        doc=doc,
    )


def _limit(seconds: Any) -> Any:
    return seconds if seconds is None or seconds > 0 else 0  # upstream: <= 0 closes at once


def _checked_out(pool: BaseConnectionPool, entry: Entry) -> PooledConnectionWrapper:
    """Wrap the connection of a checkout, and note it as out (for put() of a bare one)."""
    # The core makes what it lends with ``pool._make_proxy(pool, entry)``: a function,
    # not a bound method, so that the pool holds no reference to itself.
    with pool._lock:
        info = pool._compat_info(entry)
        wrapper = PooledConnectionWrapper(info.view, pool)
        wrapper._entry = entry
        info.wrapper = weakref.ref(wrapper)
        pool._compat_out[id(info.view)] = entry
    return wrapper


class BaseConnectionPool(_CorePool):
    """Pool connections of ``db_module`` behind eventlet's ``db_pool`` interface.

    ``*args`` and ``**kwargs``, all of them, go to ``db_module.connect()``. Connections are
    opened through ``create()`` and the classmethod ``connect()``, so subclasses that
    override either keep working. (Upstream's base class could not connect; this one
    connects like ``RawConnectionPool``.) The keywords ``configure`` and ``check``, not
    upstream's, are the pool settings of :class:`dbapi_pool.ConnectionPool` (the lifecycle
    hooks), not ``connect()`` keywords.
    """

    _compat_tpooled = False

    min_size = _setting("min_size", "Connections opened by the constructor and kept.")
    max_size = _setting("max_size", "Connections open at most; more get() calls wait.")
    max_idle = _setting("max_idle", "Seconds an idle connection stays open (<= 0: none).")
    max_age = _setting("max_age", "Seconds a connection lives (<= 0: one checkout).")
    connect_timeout = _setting("connect_timeout", "Seconds connect() may take.")

    def __init__(
        self,
        db_module: Any,
        min_size: int = 0,
        max_size: int = 4,
        max_idle: float = 10,
        max_age: float = 30,
        connect_timeout: float = 5,
        cleanup: Any = cleanup_rollback,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # dbapi-pool's lifecycle hooks, not upstream's: taken out of the connect() keywords
        # (no driver takes these names), so that the signature stays upstream's.
        hooks = {"configure": kwargs.pop("configure", None), "check": kwargs.pop("check", None)}
        self._db_module = db_module
        self.cleanup = cleanup
        self._compat_settings = dict(
            min_size=min_size, max_size=max_size, max_idle=max_idle, max_age=max_age
        )
        self._compat_settings["connect_timeout"] = connect_timeout
        self._compat_classic_args = (args, kwargs)
        self._compat_out: dict[int, Entry] = {}  # checkouts still out, by id() of their _base
        name = profile_for(db_module).describe(kwargs)
        settings = self._compat_core_settings(self._compat_settings)
        offload = "auto" if self._compat_tpooled else False  # see _blocks_the_hub
        settings.update(hooks)
        super().__init__(db_module, name=name, backend="eventlet", offload=offload, **settings)

    @staticmethod
    def _compat_core_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
        # connect() enforces connect_timeout (raising this module's ConnectTimeout), so a
        # subclass overriding it keeps upstream's contract; put() runs the cleanup; as
        # upstream, connects are not capped below max_size (all of min_size at once).
        return dict(
            min_size=settings["min_size"],
            max_size=settings["max_size"],
            max_connecting=settings["max_size"],
            max_idle=_limit(settings["max_idle"]),
            max_age=_limit(settings["max_age"]),
            connect_timeout=None,
            timeout=None,
            reset=None,
        )

    def _setup(self) -> None:
        # PoolBase kept the (empty) connect arguments it was given; create() uses these.
        self._args, self._kwargs = self._compat_classic_args
        del self._compat_classic_args
        super()._setup()  # min_size connections: views of them are made when first seen
        # Through the pool's own offload threads (a cheaper hop than eventlet's tpool);
        # ``_call`` finds them anew after a fork.
        self._compat_tpool = _Tpool(self.profile, self._call) if self.offloaded else None
        self._make_proxy = _checked_out

    def _compat_info(self, entry: Entry) -> _Conn:
        """Return the entry's data of this layer, made on first sight (lock held)."""
        if entry.info is None:
            tpool, conn = self._compat_tpool, entry.conn
            entry.info = _Conn(conn if tpool is None else _TpooledConnection(conn, tpool))
        return _data(entry)

    def _connect_driver(self) -> Any:
        made = self.create()
        conn = made[-1] if isinstance(made, tuple) else made
        return conn._obj if isinstance(conn, _TpooledConnection) else conn

    def create(self) -> Any:
        """Open a connection the pool does not count: ``(created, created, conn)``."""
        # Upstream's timestamps, wall-clock, kept for callers that read them; the pool's own
        # deadlines are monotonic (in the core), never these.
        now = time.time()
        conn = self.connect(self._db_module, self.connect_timeout, *self._args, **self._kwargs)
        return now, now, conn

    @classmethod
    def connect(cls, db_module: Any, connect_timeout: Any, *args: Any, **kw: Any) -> Any:
        """Return ``db_module.connect(*args, **kw)``, or raise ConnectTimeout after
        ``connect_timeout`` seconds (``None``: never) and close the late connection."""
        return _open(db_module, connect_timeout, args, kw, cls._compat_tpooled)

    # -- checkout ------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> PooledConnectionWrapper:  # type: ignore[override]
        """Check out a connection: the newest idle one, a new one, or the next returned.

        Only the calling green thread waits, forever by default as upstream; ``timeout``
        (an addition) bounds the wait (``PoolTimeout``). An idle connection found dead is
        replaced. Raises ConnectTimeout, or the driver's own error from ``connect()``.
        """
        return super().get(timeout)  # type: ignore[return-value]

    @contextmanager
    def item(self, cleanup: Any = _MISSING) -> Iterator[PooledConnectionWrapper]:
        """Lend a connection for a ``with`` block, then ``put()`` it back with ``cleanup``."""
        conn = self.get()
        try:
            yield conn
        finally:
            self.put(conn, cleanup=cleanup)

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[PooledConnectionWrapper]:  # type: ignore[override]
        """Lend a connection for a ``with`` block: commit at the end (roll back on an
        exception), then put it back."""
        conn = self.get(timeout)
        try:
            yield conn
            if conn:  # not put back inside the block
                conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:  # the caller's exception is the one to see
                pass
            raise
        finally:
            self.put(conn)

    # -- return --------------------------------------------------------------------------

    def put(self, conn: Any, cleanup: Any = _MISSING) -> None:
        """Return a connection (or ``None``: see the module's notes).

        It is closed if ``max_idle`` or ``max_age`` is <= 0 or it is past ``max_age``;
        else ``cleanup`` (default: the pool's; ``None``: none) runs on it and it goes to
        the next waiter or stays idle. An ``Exception`` from cleanup closes it (logged);
        a ``BaseException`` propagates once its slot is freed.
        """
        if conn is None:
            self._compat_put_none()
            return
        if self._abandoned:
            self._collect_abandoned()
        entry = self._compat_claim(conn, cleanup)
        if entry is not None:
            self._compat_give_back(entry, self.cleanup if cleanup is _MISSING else cleanup)

    def _compat_claim(self, conn: Any, cleanup: Any) -> Entry | None:
        """Return the checkout of this pool that ``conn`` ends (its wrapper destroyed)."""
        if isinstance(conn, PooledConnectionWrapper):
            owner = conn._pool
            if isinstance(owner, BaseConnectionPool) and owner is not self:
                logger.debug("pool %r: passing a connection of %r back", self.name, owner.name)
                owner.put(conn, cleanup)
                return None
            if conn._unwrapped is not None:  # its connection was taken off: free the slot
                (pool, unwrapped), conn._unwrapped = conn._unwrapped, None
                cast(BaseConnectionPool, pool)._compat_detach(unwrapped)
                return None
            if conn._entry is not None:
                return self._compat_take(conn)
            if not conn:
                logger.debug("pool %r: put() of a connection already returned", self.name)
                return None
            base = conn._base  # a wrapper made by hand: look its connection up
            conn._destroy()
            conn = base
        entry = self._compat_take_base(conn)
        if entry is None:
            what = type(conn).__name__  # never its repr: it may show connect arguments
            logger.warning("pool %r: put() of a %s not out of this pool; ignored", self.name, what)
        return entry

    def _compat_take(self, wrapper: PooledConnectionWrapper) -> Entry | None:
        with self._lock:
            entry, wrapper._entry = wrapper._entry, None
            if entry is not None:
                self._compat_out.pop(id(_data(entry).view), None)
        wrapper._destroy()
        return entry

    def _compat_take_base(self, base: Any) -> Entry | None:
        with self._lock:
            entry = self._compat_out.get(id(base))
            if entry is None or _data(entry).view is not base:
                return None
            del self._compat_out[id(base)]
            ref = _data(entry).wrapper
            wrapper = ref() if ref is not None else None
            if wrapper is not None:
                wrapper._entry = None
        if wrapper is not None:
            wrapper._destroy()
        return entry

    def _compat_give_back(self, entry: Entry, cleanup: Any, reason: str | None = None) -> None:
        """Close or keep the connection of a checkout that ended (``reason``: close it)."""
        info = _data(entry)
        if info.detached:  # put(None) freed its slot already
            self._close_quietly(entry.conn, "detached")
            return
        state, now = self._state, _monotonic()
        reason = reason or state.retire_reason(entry, now)
        if reason is None and state.size - state.closing > self._config.max_size:
            reason = "resized"  # closed by checkin() anyway: spare it the cleanup
        if reason is None and cleanup is not None:
            reason = self._compat_cleanup(entry, cleanup, info.view)
            if reason is None and self._events.reset:
                self._events.emit("reset", self, entry.conn)
        if reason is not None:
            self._close_quietly(entry.conn, reason)
        held = now - entry.checked_out_at
        self._compat_checkin(entry, now, reason)
        if self._events.checkin:
            self._events.emit("checkin", self, entry.conn, held)

    def _compat_cleanup(self, entry: Entry, cleanup: Any, view: Any) -> str | None:
        try:
            cleanup(view)
        except Exception as exc:
            logger.warning("pool %r: cleanup %r raised %r; closing", self.name, cleanup, exc)
            return "reset_failed"
        except BaseException:  # session state unknown: close it, free the slot, go on
            self._close_quietly(entry.conn, "reset_failed")
            self._compat_checkin(entry, _monotonic(), "reset_failed")
            raise
        return None

    def _compat_checkin(self, entry: Entry, now: float, reason: str | None) -> None:
        self._run_core(self._state.checkin, entry, now, reason)

    def _compat_put_none(self) -> None:
        plan, lost = self._compat_take_lost(claim=True)
        if plan is not None:
            self._carry_out(plan)
        if not lost and not self._compat_detach(None):
            logger.warning("pool %r: put(None) with no connection out; ignored", self.name)

    def _compat_detach(self, entry: Entry | None) -> bool:
        """Free the slot of a checkout that will not come back (``None``: pick one)."""
        return bool(self._run_core(self._compat_detach_locked, entry))

    def _compat_detach_locked(self, entry: Entry | None) -> bool:
        out = list(self._compat_out.values())
        if entry is None and out:
            entry = next((e for e in out if _data(e).wrapper is None), out[0])
        if entry is None or entry not in out:
            return False
        del self._compat_out[id(_data(entry).view)]
        _data(entry).detached = True
        return self._state.detach(entry)

    def _abandoned_plan(self) -> Plan | None:
        return self._compat_take_lost(claim=False)[0]

    def _compat_take_lost(self, *, claim: bool) -> tuple[Plan | None, int]:
        """Retire the checkouts whose wrapper was dropped; count the slots freed."""
        detached, lost = [], 0
        with self._lock:
            while self._abandoned:
                entry = self._abandoned.popleft()
                self._compat_out.pop(id(_data(entry).view), None)
                if _data(entry).detached:
                    detached.append(entry)
                elif entry.state == "in_use":
                    self._state.abandon(entry)
                    lost += 1
            plan = self._state.take_plan()
        for entry in detached:
            self._close_quietly(entry.conn, "detached")
        for n in range(lost):  # the one put(None) stands for was not forgotten
            level = logging.DEBUG if claim and n == 0 else logging.WARNING
            logger.log(level, "pool %r: a connection was dropped without put()", self.name)
        return plan, lost

    # -- the rest of the classic surface -------------------------------------------------

    @property
    def current_size(self) -> int:
        """Count the connections open or opening, idle or out (what ``max_size`` bounds)."""
        return self._state.size

    @property
    def free_items(self) -> deque[Any]:
        """Return a snapshot of the idle connections, newest first."""
        with self._lock:
            return deque(self._compat_info(entry).view for entry in reversed(self._state.idle))

    def free(self) -> int:
        """Count the connections ``get()`` may have without waiting: idle + room to grow."""
        return len(self._state.idle) + self._config.max_size - self._state.size

    def waiting(self) -> int:
        """Count the callers blocked in ``get()``."""
        return len(self._state.waiters)

    def resize(self, new_size: int) -> None:  # type: ignore[override]  # upstream's
        """Change ``max_size``: new room serves waiters at once; a surplus is closed as
        connections come back."""
        self.max_size = new_size

    def _compat_reconfigure(self, name: str, value: Any) -> None:
        settings = {**self._compat_settings, name: value}
        # Validated by replace(); the settings this layer does not map are kept as is.
        config = self._config.replace(**self._compat_core_settings(settings))
        if not self._state.closed:  # upstream let a closed pool's attributes be set
            self._run_core(self._compat_apply, config)
        self._compat_settings = settings

    def _compat_apply(self, config: Any) -> None:
        self._state.reconfigure(config, _monotonic())
        self._config = self._state.config

    def clear(self) -> None:
        """Close every idle connection (those out are not touched); return once closed,
        and (where the driver exposes its socket) gone from the server."""
        self._run_core(self._state.clear_idle)

    def _unwrap_connection(self, conn: Any) -> Any:
        """Return a wrapper's connection (destroying the wrapper), ``x._base`` for another
        object that has one, else ``None``. The checkout keeps its slot until its
        connection, its wrapper or ``None`` is put back."""
        base = None
        try:
            if conn:
                base = conn._base
                conn._destroy()
        except AttributeError:
            pass  # None, junk, or a _base without _destroy
        return base

    def _safe_close(self, conn: Any, quiet: bool = False) -> None:
        """Close ``conn`` (a wrapper goes back to its pool); log an ``Exception`` (at DEBUG
        if ``quiet``) rather than raise it; let a ``BaseException`` through."""
        try:
            conn.close()
        except AttributeError:
            pass  # None, or junk
        except Exception as exc:
            level = logging.DEBUG if quiet else logging.WARNING
            logger.log(level, "pool %r: Connection.close raised %r", self.name, exc)


class _NotInEventlet:
    """Hide a method the native pools have and eventlet's ``db_pool`` has not."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError(
            f"{getattr(owner, '__name__', 'the pool')} has no {self.name}(): eventlet's "
            "db_pool has none (dbapi_pool.ConnectionPool has it)"
        )


for _shortcut in ("execute", "fetchone", "fetchall", "fetchval"):
    _hidden = _NotInEventlet()
    setattr(BaseConnectionPool, _shortcut, _hidden)
    _hidden.__set_name__(BaseConnectionPool, _shortcut)

# A checkout's site is the caller of these, not the drop-in's own frames.
skip_in_sites(BaseConnectionPool.get, BaseConnectionPool.item, BaseConnectionPool.connection)


class TpooledConnectionPool(BaseConnectionPool):
    """Pool connections whose driver calls all run in eventlet's tpool (OS threads), so
    that a C driver does not block the other green threads."""

    _compat_tpooled = True


class RawConnectionPool(BaseConnectionPool):
    """Pool connections whose driver is called directly, in the calling green thread."""


ConnectionPool = TpooledConnectionPool
