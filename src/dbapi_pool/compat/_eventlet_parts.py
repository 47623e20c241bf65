"""The parts of the eventlet ``db_pool`` drop-in that are not the pool itself.

Its exception, the default cleanup, the tpool view of a connection, the timed connect of
the classic ``connect()`` classmethod, and the connection wrappers: all of them public in
:mod:`dbapi_pool.compat.eventlet_db_pool`, which re-exports them.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from .._drivers import module_name, profile_for
from .._sync import ConnectionPool as _CorePool
from .._sync.backends import EventletBackend
from .._sync.worker import ConnectAttempt
from ..errors import UnknownHost
from ..proxy import OffloadedCursor

if TYPE_CHECKING:  # the core's entries pass through this layer, never made or read here
    from .._core import Entry

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic


class ConnectTimeout(Exception):
    """The driver's ``connect()`` took longer than ``connect_timeout``."""


def cleanup_rollback(conn: Any) -> None:
    """Roll back whatever the borrower left open (the pools' default ``cleanup``)."""
    conn.rollback()


# -- offloading to eventlet's tpool ------------------------------------------------------


def _tpool_execute(fn: Callable[..., Any], *args: Any) -> Any:
    from eventlet import tpool

    return tpool.execute(fn, *args)


class _Tpool:
    """Run driver calls in OS threads (what an ``OffloadedCursor`` needs of a pool): a
    pool's own offload threads where there is a pool, else eventlet's tpool (the
    classmethod ``connect()``)."""

    __slots__ = ("_call", "profile")

    def __init__(self, profile: Any, call: Callable[..., Any] | None = None) -> None:
        self.profile = profile
        self._call = _tpool_execute if call is None else call


class _TpooledConnection:
    """Run each method of a driver connection in an OS thread (one hop per call);
    ``cursor()`` gives a cursor whose statements are one hop each."""

    __slots__ = ("_obj", "_tpool")

    def __init__(self, obj: Any, tpool: _Tpool) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_tpool", tpool)

    def __getattr__(self, name: str) -> Any:
        value = getattr(object.__getattribute__(self, "_obj"), name)
        tpool = self._tpool
        if name == "cursor":
            return lambda *a, **k: OffloadedCursor(value(*a, **k), cast(Any, tpool))
        if not callable(value):
            return value
        return lambda *a, **k: tpool._call(partial(value, *a, **k))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._obj, name, value)

    def __enter__(self) -> Any:
        return self._tpool._call(self._obj.__enter__)

    def __exit__(self, *exc_info: Any) -> Any:
        return self._tpool._call(self._obj.__exit__, *exc_info)

    def __bool__(self) -> bool:
        return bool(self._obj)

    def __repr__(self) -> str:
        return repr(self._obj)


def _open(db_module: Any, timeout: Any, args: Any, kw: Any, tpooled: bool) -> Any:
    """Connect (in tpool if ``tpooled``); raise ConnectTimeout after ``timeout`` s."""
    limit = None if timeout is None else max(0.0, float(timeout))
    profile = profile_for(db_module)
    # The driver's own connect timeout, where it has one, frees its thread too.
    opener = partial(db_module.connect, *args, **profile.connect_kwargs(kw, limit or None))
    tpool = _Tpool(profile) if tpooled and _blocks_the_hub(profile) else None
    run = opener if tpool is None else partial(tpool._call, opener)
    conn = run() if limit is None else _timed(run, limit, tpool, module_name(db_module))
    return conn if tpool is None else _TpooledConnection(conn, tpool)


def _blocks_the_hub(profile: Any) -> bool:
    """Tell whether a driver's calls would block the hub (then tpool runs them).

    A driver that cooperates (psycopg2 made green by ``monkey_patch()``, PyMySQL on
    patched sockets) is called directly: in tpool it would run a hub per OS thread, and a
    connect stuck on a silent server would hold a tpool thread for good.
    """
    cooperates = profile.cooperates
    return not (cooperates and cooperates("eventlet", EventletBackend().sockets_patched()))


def _timed(run: Callable[[], Any], limit: float, tpool: _Tpool | None, name: str) -> Any:
    lock = threading.Lock()  # looked up now: green once threading is patched
    attempt = ConnectAttempt(run, lock, partial(_close_late, tpool), EventletBackend(), name)
    try:
        finished = attempt.wait(limit)
    except BaseException:  # killed while waiting: close the connection when it comes
        with lock:
            late = attempt.finished
            attempt.abandoned = not late
        if late:
            _close_late(tpool, attempt.conn)
        raise
    if not finished:
        raise ConnectTimeout(f"{name}: connect() took longer than connect_timeout={limit:g} s")
    error, attempt.error = attempt.error, None  # no attempt <-> traceback cycle
    if error is not None:
        raise error
    return attempt.conn


def _close_late(tpool: _Tpool | None, conn: Any) -> None:
    """Close a connection that arrived after its caller gave up."""
    if conn is not None:
        try:
            tpool._call(conn.close) if tpool is not None else conn.close()
        except Exception as exc:
            logger.warning("closing a connection that came after connect_timeout: %s", exc)


# -- what callers hold -------------------------------------------------------------------

#: The methods upstream's wrapper forwards (MySQLdb-centric); nothing else is forwarded.
_PROXIED = """affected_rows autocommit begin change_user character_set_name close commit
cursor dump_debug_info errno error errorhandler get_server_info insert_id literal ping query
rollback select_db server_capabilities set_character_set set_isolation_level
set_server_option set_sql_mode show_warnings shutdown sqlstate stat store_result
string_literal thread_id use_result warning_count""".split()  # noqa: SIM905 (33 lines as a list)


class GenericConnectionWrapper:
    """Forward upstream's fixed list of connection methods to ``self._base``."""

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    def __init__(self, baseconn: Any) -> None:
        self._base = baseconn

    def __enter__(self) -> Any:
        return self._base.__enter__()

    def __exit__(self, exc: Any, value: Any, tb: Any) -> Any:
        return self._base.__exit__(exc, value, tb)

    def __repr__(self) -> str:
        if not hasattr(self, "_base"):  # upstream raised AttributeError here
            return f"<{type(self).__name__} (returned)>"
        return repr(self._base)


def _forward(name: str) -> Callable[..., Any]:
    def method(self: GenericConnectionWrapper, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._base, name)(*args, **kwargs)

    method.__name__, method.__qualname__ = name, f"GenericConnectionWrapper.{name}"
    method.__doc__ = f"Call ``{name}`` on the wrapped connection."
    return method


for _name in _PROXIED:
    setattr(GenericConnectionWrapper, _name, _forward(_name))


class PooledConnectionWrapper(GenericConnectionWrapper):
    """Lend one pooled connection: truthy while out; ``close()`` puts it back.

    Once back it is falsy, its methods raise ``AttributeError`` and ``close()`` does
    nothing; the cursors it gave are closed (upstream left them running on a connection
    that may serve another borrower by then). Dropped while out, its connection is
    closed and its slot freed.
    """

    _entry: Entry | None = None
    #: (pool, entry) once ``_destroy()`` took it off a checkout still out.
    _unwrapped: tuple[_CorePool, Entry] | None = None
    #: The cursors it gave (``None`` until the first), closed when it goes back.
    _cursors: list[Any] | None = None

    def __init__(self, baseconn: Any, pool: Any) -> None:
        super().__init__(baseconn)
        self._pool = pool

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return a cursor of the wrapped connection, closed when the wrapper goes back."""
        cursor = self._base.cursor(*args, **kwargs)
        if self._cursors is None:
            self._cursors = [cursor]
        else:
            self._cursors.append(cursor)
        return cursor

    def __bool__(self) -> bool:
        return hasattr(self, "_base") and bool(self._base)

    __nonzero__ = __bool__

    def _destroy(self) -> None:
        """Let go of the connection for good: the wrapper becomes falsy and useless.

        Going back to its pool (called by ``put()`` outside the pool's lock, before the
        cleanup), it first closes the cursors it gave, in this green thread (a tpooled
        cursor in an OS thread); taken off by ``_unwrap_connection``, it leaves them to
        the caller, who keeps the connection.
        """
        entry, pool = self._entry, self._pool
        self._entry = self._pool = None
        cursors, self._cursors = self._cursors, None
        if entry is not None and isinstance(pool, _CorePool):
            # Taken off a checkout still out: its slot stays taken until the connection,
            # this wrapper or None is put back.
            self._unwrapped = (pool, entry)
            cast(_Conn, entry.info).wrapper = None
        elif cursors is not None and hasattr(self, "_base"):
            _close_cursors(self._base, cursors, getattr(pool, "name", None))
        if hasattr(self, "_base"):
            del self._base

    def close(self) -> None:
        """Return the connection to its pool (a second call does nothing)."""
        if self and self._pool:
            self._pool.put(self)
        self._destroy()

    def __del__(self) -> None:
        entry, pool = self._entry, getattr(self, "_pool", None)
        if entry is not None and isinstance(pool, _CorePool):
            try:  # lock-free hand-over: the collector may run under the pool's lock
                pool._abandon(entry)
            except Exception:  # interpreter shutdown
                pass


def _close_cursors(base: Any, cursors: list[Any], pool_name: str | None) -> None:
    """Close the cursors of a returned checkout; if one cannot be closed, close the
    connection (which ends them all): it must not reach the next borrower."""
    try:
        for cursor in cursors:
            cursor.close()
    except Exception as exc:
        logger.warning(
            "pool %r: closing a cursor of a returned connection failed (%s: %s); "
            "closing the connection",
            pool_name,
            type(exc).__name__,
            exc,
        )
        try:
            base.close()
        except Exception:  # already unusable: the cleanup or the next check will tell
            pass


class _Conn:
    """Hold what this layer knows of one pooled connection (its ``Entry.info``)."""

    __slots__ = ("detached", "view", "wrapper")

    def __init__(self, view: Any) -> None:
        self.view = view  # what _base, free_items and cleanup get
        self.wrapper: weakref.ref[PooledConnectionWrapper] | None = None  # None: unwrapped
        self.detached = False  # put(None) freed its slot: close it when it comes back


def _data(conn: Any) -> _Conn:
    return cast(_Conn, conn.info)


class DatabaseConnector:
    """Keep a pool per ``(host, dbname)``, created on first use (upstream's pool of pools).

    ``credentials`` maps a host name to its ``connect()`` keywords; the ``'default'`` entry
    serves the others. ``conn_pool`` is the pool class (default ``ConnectionPool``);
    ``*args`` and ``**kwargs`` go to every pool.
    """

    def __init__(
        self,
        module: Any,
        credentials: Mapping[str, Mapping[str, Any]],
        conn_pool: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        if conn_pool is None:
            from .eventlet_db_pool import ConnectionPool as conn_pool
        self._conn_pool_class = conn_pool
        self._module = module
        self._args = args
        self._kwargs = kwargs
        self._credentials = credentials
        self._databases: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def credentials_for(self, host: str) -> Mapping[str, Any]:
        """Return the connect keywords for ``host``: its own entry, else ``'default'``;
        raise :class:`~dbapi_pool.errors.UnknownHost` (a ``KeyError``) if neither exists."""
        for key in (host, "default"):
            if key in self._credentials:
                return self._credentials[key]
        known = ", ".join(repr(name) for name in self._credentials)
        raise UnknownHost(f"no credentials for host {host!r} and no 'default' ({known})")

    def get(self, host: str, dbname: str) -> Any:
        """Return the pool (not a connection) for ``(host, dbname)``, created on first use
        with the connector's keywords, ``host`` and ``db``, then ``credentials_for(host)``."""
        key = (host, dbname)
        pool = self._databases.get(key)
        if pool is not None:
            return pool
        kwargs = {**self._kwargs, "db": dbname, "host": host}
        kwargs.update(self.credentials_for(host))
        # Made outside the lock (a constructor may connect, and yield); a pool that lost
        # the race to another green thread is closed unused.
        made = self._conn_pool_class(self._module, *self._args, **kwargs)
        with self._lock:
            pool = self._databases.setdefault(key, made)
        if pool is not made and callable(getattr(made, "close", None)):
            made.close()
        return pool
