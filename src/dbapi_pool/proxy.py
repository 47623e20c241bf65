"""PooledConnection, the proxy a caller holds for one checkout, and its closed stand-in."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConnectionReleased

if TYPE_CHECKING:
    from ._core import Entry
    from ._policy import DriverPolicy

__all__ = [
    "Cursors",
    "OffloadedConnection",
    "OffloadedCursor",
    "PooledConnection",
    "Released",
    "close_cursors",
    "detach",
]

#: Connection methods (sqlite3, psycopg 3, psycopg2) that return an object working on the
#: connection: a cursor (``execute``...), a blob or a large object. What a checkout made
#: with them is closed when it ends, like its cursors.
CURSOR_MAKERS = frozenset({"execute", "executemany", "executescript", "blobopen", "lobject"})


class _Owner(Protocol):
    """What a proxy needs of its pool."""

    name: str
    #: What to ask of the driver's connections (commit needed? a "dead" error?).
    _policy: DriverPolicy

    def put(self, conn: Any) -> None: ...

    def _abandon(self, entry: Entry) -> None: ...

    def _call(self, fn: Any, *args: Any) -> Any: ...

    @property
    def profile(self) -> Any: ...


class Released:
    """Stand in for the driver connection once a proxy went back: every use raises."""

    __slots__ = ("_message",)

    def __init__(self, pool_name: str) -> None:
        self._message = (
            f"this connection was returned to pool {pool_name!r} and can no longer be "
            "used; get() a new one"
        )

    def __getattr__(self, name: str) -> Any:
        raise ConnectionReleased(self._message)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_message":
            object.__setattr__(self, name, value)
        else:
            raise ConnectionReleased(self._message)


_OWN = frozenset({"_conn", "_cursors", "_entry", "_pool"})


class PooledConnection:
    """Delegate to a pooled driver connection for the length of one checkout.

    Every attribute (``cursor()``, ``commit()``, ``autocommit = True``...) goes to the
    driver's connection. ``close()`` returns the connection to its pool instead of closing
    it; so does leaving a ``with`` block, after committing (or rolling back on an
    exception). After that, every use raises :class:`~dbapi_pool.errors.ConnectionReleased`,
    and the cursors it made are closed (the driver's "cursor closed" error): the connection
    may already serve another borrower.
    """

    __slots__ = ("__weakref__", "_conn", "_cursors", "_entry", "_pool")

    _conn: Any
    #: What this checkout made that works on the connection (cursors...), closed by put():
    #: ``None``, the one made, or a :class:`Cursors` list of several. A checkout that
    #: makes none pays nothing for them, one that makes one no allocation.
    _cursors: Any
    _entry: Entry | None
    _pool: _Owner

    def __init__(self, pool: _Owner, entry: Entry) -> None:
        _set_pool(self, pool)
        _set_entry(self, entry)
        _set_conn(self, entry.conn)
        _set_cursors(self, None)

    @classmethod
    def lend(cls, pool: _Owner, entry: Entry) -> PooledConnection:
        """Make the proxy of one checkout (what ``__init__`` does, without its frame)."""
        proxy = _new(cls)
        _set_pool(proxy, pool)
        _set_entry(proxy, entry)
        _set_conn(proxy, entry.conn)
        _set_cursors(proxy, None)
        return proxy

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._conn, name)
        if name in CURSOR_MAKERS:  # found: the driver has it (hasattr() stays true to it)
            return _Tracking(self, value)
        return value

    def _track(self, made: Any) -> Any:
        """Note an object made on the connection, to be closed when the checkout ends."""
        cursors = self._cursors
        if cursors is None:
            _set_cursors(self, made)
        elif type(cursors) is Cursors:
            cursors.append(made)
        else:
            _set_cursors(self, Cursors((cursors, made)))
        return made

    # The methods every request calls are spelled out: reaching them through __getattr__
    # costs a failed lookup first (more than the rest of a checkout).

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        """Return a cursor of the driver's connection (closed when the checkout ends)."""
        cursor = self._conn.cursor(*args, **kwargs)
        if self._cursors is None:  # the first: _track() inline, a frame fewer per request
            _set_cursors(self, cursor)
            return cursor
        return self._track(cursor)

    def commit(self) -> None:
        """Commit the current transaction."""
        self._conn.commit()

    def rollback(self) -> None:
        """Roll back the current transaction."""
        self._conn.rollback()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._conn, name, value)

    @property
    def raw(self) -> Any:
        """Return the driver's own connection (valid only until this proxy is returned)."""
        if self._entry is None:
            return self._conn.raw  # raises ConnectionReleased
        return self._conn

    @property
    def released(self) -> bool:
        """Tell whether this proxy has gone back to its pool."""
        return self._entry is None

    def close(self) -> None:
        """Return the connection to its pool (a second call does nothing)."""
        if self._entry is not None:
            self._pool.put(self)

    def __enter__(self) -> PooledConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit (or roll back after an exception), then return the connection."""
        entry = self._entry
        if entry is None:
            return
        if exc is not None:
            self._pool._policy.note_error(entry, exc)
        try:
            if exc_type is None:
                if self._pool._policy.needs_commit(self._conn):
                    self.commit()
            else:
                try:
                    self.rollback()
                except Exception:
                    # The caller's exception is the one to see; a connection that cannot
                    # roll back fails its reset on return and is closed there.
                    pass
        finally:
            self._pool.put(self)

    def __del__(self) -> None:
        # Garbage-collected while checked out: the pool closes the connection (its state is
        # unknown) and frees the slot. Only a lock-free hand-over happens here, since the
        # collector may run while this thread holds the pool's lock.
        entry = self._entry
        if entry is not None:
            try:
                self._pool._abandon(entry)
            except Exception:  # interpreter shutdown: nothing left to tell
                pass

    def __repr__(self) -> str:
        entry = self._entry
        if entry is None:
            return f"<PooledConnection of {self._pool.name!r} (released)>"
        return f"<PooledConnection #{entry.serial} of {self._pool.name!r}>"


# Slot setters that bypass __setattr__ (which forwards to the driver's connection).
_new = object.__new__
_set_pool = vars(PooledConnection)["_pool"].__set__
_set_entry = vars(PooledConnection)["_entry"].__set__
_set_conn = vars(PooledConnection)["_conn"].__set__
_set_cursors = vars(PooledConnection)["_cursors"].__set__


class Cursors(list[Any]):
    """The objects a checkout made on its connection, when it made more than one."""

    __slots__ = ()


class _Tracking:
    """Call a driver method that makes a cursor (``conn.execute(...)``), and note what it
    returns with the checkout, to be closed when the checkout ends."""

    __slots__ = ("_method", "_proxy")

    def __init__(self, proxy: PooledConnection, method: Any) -> None:
        self._proxy = proxy
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._proxy._track(self._method(*args, **kwargs))

    def __repr__(self) -> str:
        return repr(self._method)


def detach(proxy: PooledConnection, stand_in: Released) -> None:
    """Cut a proxy from its connection (put()): from now on every use raises.

    The cursors (and the like) it made stay in ``proxy._cursors``, for the pool to close
    before the connection is reset and lent again (issue 11: a cursor kept after put()
    ran its queries in the next borrower's session).
    """
    _set_entry(proxy, None)
    _set_conn(proxy, stand_in)


def close_cursors(cursors: Any) -> None:
    """Close what a checkout made on its connection: one object or a :class:`Cursors`
    list (the first error stops it: the connection is then closed, ending the rest)."""
    if type(cursors) is Cursors:
        for cursor in cursors:
            cursor.close()
    else:
        cursors.close()


class OffloadedConnection(PooledConnection):
    """Run each whole operation of a pooled connection in an OS thread.

    Handed out by a green pool whose driver would block the hub: ``cursor()`` gives an
    :class:`OffloadedCursor`; ``commit()``, ``rollback()`` and ``execute()`` are one hop
    each. Other attributes are the driver's own (and run in the calling green thread).
    """

    __slots__ = ()

    def cursor(self, *args: Any, **kwargs: Any) -> OffloadedCursor:
        """Return a cursor whose statements and fetches run in an OS thread."""
        cursor = OffloadedCursor(self._conn.cursor(*args, **kwargs), self._pool)
        self._track(cursor)
        return cursor

    def commit(self) -> None:
        """Commit, in an OS thread."""
        self._pool._call(self._conn.commit)

    def rollback(self) -> None:
        """Roll back, in an OS thread."""
        self._pool._call(self._conn.rollback)

    def execute(self, *args: Any) -> OffloadedCursor:
        """Run the driver's ``execute`` shortcut (sqlite3, psycopg) in an OS thread."""
        cursor = OffloadedCursor(self._pool._call(self._conn.execute, *args), self._pool)
        self._track(cursor)
        return cursor


class OffloadedCursor:
    """Run a driver cursor's statements (and fetches that may read the socket) in an
    OS thread: one hop per whole operation, not per attribute (eventlet's tpool.Proxy
    makes four hops per query)."""

    __slots__ = ("_call", "_closed", "_local_close", "_local_fetch", "raw")

    def __init__(self, raw: Any, pool: _Owner) -> None:
        self.raw = raw
        self._call = pool._call
        #: Closed through this object: the pool need not close it again (one hop saved).
        self._closed = False
        local_fetch, local_close = pool.profile.local_fetch, pool.profile.local_close
        self._local_fetch = local_fetch is not None and local_fetch(raw)
        if local_close is local_fetch:  # the same test (psycopg): ask once
            self._local_close = self._local_fetch
        else:
            self._local_close = local_close is not None and local_close(raw)

    def _run(self, method: Any, *args: Any) -> Any:
        result = self._call(method, *args)
        return self if result is self.raw else result

    def execute(self, *args: Any) -> Any:
        """Run a statement."""
        return self._run(self.raw.execute, *args)

    def executemany(self, *args: Any) -> Any:
        """Run a statement once per parameter set."""
        return self._run(self.raw.executemany, *args)

    def callproc(self, *args: Any) -> Any:
        """Call a stored procedure."""
        return self._run(self.raw.callproc, *args)

    def fetchone(self) -> Any:
        """Fetch the next row, or ``None``."""
        return self.raw.fetchone() if self._local_fetch else self._call(self.raw.fetchone)

    def fetchmany(self, *args: Any) -> Any:
        """Fetch up to ``size`` rows."""
        if self._local_fetch:
            return self.raw.fetchmany(*args)
        return self._call(self.raw.fetchmany, *args)

    def fetchall(self) -> Any:
        """Fetch every remaining row."""
        return self.raw.fetchall() if self._local_fetch else self._call(self.raw.fetchall)

    def nextset(self) -> Any:
        """Move to the next result set."""
        return self._call(self.raw.nextset)

    def close(self) -> None:
        """Close the cursor (inline when that does no I/O: one hop fewer per query)."""
        if self._closed:
            return
        if self._local_close:
            self.raw.close()
        else:
            self._call(self.raw.close)
        self._closed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __iter__(self) -> Any:
        while True:
            rows = self.fetchmany(max(self.raw.arraysize, 100))
            if not rows:
                return
            yield from rows

    def __enter__(self) -> OffloadedCursor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
