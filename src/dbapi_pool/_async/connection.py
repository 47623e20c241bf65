"""The async facades of a pooled connection and its cursors.

Every operation that may wait on the server (execute, fetch, commit, rollback, close) runs
as one job on the connection's own thread; what is pure bookkeeping (creating a cursor,
reading ``description``) runs inline. A call whose task is cancelled is not abandoned
mid-flight: the pool takes the connection back, asks the server to cancel, and reuses or
closes the connection only once the call has really returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConnectionReleased

if TYPE_CHECKING:
    from .._core import Entry
    from .._drivers import DriverProfile
    from .._policy import DriverPolicy
    from .threads import ConnectionInfo, ConnectionThread

__all__ = ["AsyncCursor", "AsyncOwner", "AsyncPooledConnection"]


class AsyncOwner(Protocol):
    """What an async connection needs of its pool (``AsyncConnectionPool``)."""

    @property
    def name(self) -> str: ...

    @property
    def profile(self) -> DriverProfile: ...

    #: What to ask of the driver's connections (commit needed? a "dead" error?).
    _policy: DriverPolicy

    async def put(self, conn: AsyncPooledConnection) -> None: ...

    def _cancelled_mid_call(self, entry: Entry, cursors: list[Any] | None) -> None:
        """Take back a connection whose caller was cancelled while its call ran, with the
        driver cursors of the checkout still open (closed in its thread after the call)."""

    def _abandon(self, entry: Entry) -> None:
        """Take a connection whose holder was collected without returning it."""


#: Rows fetched per job by ``async for row in cursor``.
ITERATION_BATCH = 100


def _execute(cursor: Any, sql: str, params: Any) -> None:
    # Some drivers (sqlite3) refuse params=None: pass only what was given.
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)


class AsyncPooledConnection:
    """Offload a pooled driver connection's operations for the length of one checkout.

    ``await conn.commit()``, ``await conn.rollback()``, ``conn.cursor()`` (awaitable and an
    async context manager), ``await conn.execute(sql, params)`` (a new cursor),
    ``await conn.run(fn, *args)`` (any blocking code, in the connection's own thread, with
    ``conn.raw`` the driver's connection). ``await conn.close()`` returns it to the pool;
    so does leaving ``async with conn:`` after committing (or rolling back on an exception).
    Its cursors still open then are closed (in the connection's thread, before the reset):
    the connection may serve another borrower next.
    """

    __slots__ = ("__weakref__", "_conn", "_cursors", "_entry", "_pool", "_thread")

    def __init__(self, pool: AsyncOwner, entry: Entry) -> None:
        self._pool = pool
        self._entry: Entry | None = entry
        self._conn: Any = entry.conn
        info: ConnectionInfo = entry.info
        self._thread: ConnectionThread = info.thread
        #: The driver cursors of this checkout not closed yet (``None`` until the first):
        #: closed on return. The driver's, not the AsyncCursors: no reference cycle.
        self._cursors: list[Any] | None = None

    @property
    def raw(self) -> Any:
        """Return the driver's connection: use it only inside :meth:`run`."""
        if self._entry is None:
            raise self._released_error()
        return self._conn

    @property
    def released(self) -> bool:
        """Tell whether this connection has gone back to its pool."""
        return self._entry is None

    def _released_error(self) -> ConnectionReleased:
        return ConnectionReleased(
            f"this connection was returned to pool {self._pool.name!r} and can no longer "
            "be used; get() a new one"
        )

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the connection's own thread and return its result."""
        if self._entry is None:
            raise self._released_error()
        entry = self._entry
        fut = self._thread.submit(fn, *args)
        try:
            return await fut
        except asyncio.CancelledError:
            if self._release() is not None:
                self._pool._cancelled_mid_call(entry, self._open_cursors())
            raise
        except Exception as exc:
            self._pool._policy.note_error(entry, exc)
            raise

    def cursor(self, *args: Any, **kwargs: Any) -> AsyncCursor:
        """Return a new cursor: ``cur = await conn.cursor()`` or ``async with conn.cursor()``."""
        raw = self.raw.cursor(*args, **kwargs)
        cursors = self._cursors
        if cursors is None:
            self._cursors = [raw]
        else:
            cursors.append(raw)
        return AsyncCursor(self, raw)

    async def execute(self, sql: str, params: Any = None) -> AsyncCursor:
        """Run ``sql`` on a new cursor and return the cursor, ready to fetch from."""
        cursor = self.cursor()
        await cursor.execute(sql, params)
        return cursor

    async def commit(self) -> None:
        """Commit the current transaction."""
        await self.run(self.raw.commit)

    async def rollback(self) -> None:
        """Roll back the current transaction."""
        await self.run(self.raw.rollback)

    async def close(self) -> None:
        """Return the connection to its pool (a second call does nothing)."""
        if self._entry is not None:
            await self._pool.put(self)

    def _release(self) -> Entry | None:
        """Detach from the connection; return its entry, or ``None`` if already detached."""
        entry, self._entry = self._entry, None
        return entry

    def _open_cursors(self) -> list[Any] | None:
        """Return the driver cursors still open (``None``: none), forgetting them: the pool
        closes them in the connection's thread before the connection is lent again."""
        cursors, self._cursors = self._cursors, None
        return cursors or None

    def _closed_cursor(self, raw: Any) -> None:
        """Forget a cursor closed by its caller (nothing to close on return)."""
        cursors = self._cursors
        if cursors is not None:
            try:
                cursors.remove(raw)
            except ValueError:  # closed twice
                pass

    async def __aenter__(self) -> AsyncPooledConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit (or roll back after an exception), then return the connection."""
        if self._entry is None:
            return
        try:
            if exc_type is None:
                if self._pool._policy.needs_commit(self._conn):
                    await self.commit()
            elif not issubclass(exc_type, asyncio.CancelledError):
                # A cancelled call already sent the connection back through the pool.
                try:
                    await self.rollback()
                except Exception:
                    pass  # the reset on return closes a connection that cannot roll back
        finally:
            await self.close()

    def __del__(self) -> None:
        # Collected while checked out: the pool closes the connection and frees its slot
        # (lock-free hand-over: the collector may run anywhere).
        entry = self._entry
        if entry is not None:
            try:
                self._pool._abandon(entry)
            except Exception:
                pass

    def __repr__(self) -> str:
        entry = self._entry
        if entry is None:
            return f"<AsyncPooledConnection of {self._pool.name!r} (released)>"
        return f"<AsyncPooledConnection #{entry.serial} of {self._pool.name!r}>"


class AsyncCursor:
    """Offload a driver cursor's operations; ``raw`` is the driver's cursor."""

    __slots__ = ("_buffer", "_conn", "_local_close", "_local_fetch", "raw")

    def __init__(self, conn: AsyncPooledConnection, raw: Any) -> None:
        self._conn = conn
        self.raw = raw
        self._buffer: list[Any] = []
        # Rows already on the client need no thread hop (a hop costs more than the fetch).
        profile = conn._pool.profile
        local_fetch, local_close = profile.local_fetch, profile.local_close
        self._local_fetch = local_fetch is not None and local_fetch(raw)
        if local_close is local_fetch:  # the same test (psycopg): ask once
            self._local_close = self._local_fetch
        else:
            self._local_close = local_close is not None and local_close(raw)

    async def _fetch(self, method: Callable[..., Any], *args: Any) -> Any:
        if self._local_fetch:
            if self._conn.released:
                raise self._conn._released_error()
            return method(*args)
        return await self._conn.run(method, *args)

    def __await__(self) -> Generator[Any, None, AsyncCursor]:
        # ``await conn.cursor()`` works: creating a cursor does no I/O, so nothing waits.
        return self
        yield  # pragma: no cover  (makes this a generator)

    async def execute(self, sql: str, params: Any = None) -> AsyncCursor:
        """Run a statement; return the cursor."""
        self._buffer = []
        await self._conn.run(_execute, self.raw, sql, params)
        return self

    async def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> AsyncCursor:
        """Run a statement once for each parameter set; return the cursor."""
        self._buffer = []
        await self._conn.run(self.raw.executemany, sql, list(seq_of_params))
        return self

    async def fetchone(self) -> Any:
        """Fetch the next row, or ``None``."""
        if self._buffer:
            return self._buffer.pop(0)
        return await self._fetch(self.raw.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """Fetch up to ``size`` rows (default: ``arraysize``)."""
        size = self.raw.arraysize if size is None else size
        rows, self._buffer = self._buffer[:size], self._buffer[size:]
        if len(rows) < size:
            rows += await self._fetch(self.raw.fetchmany, size - len(rows))
        return rows

    async def fetchall(self) -> list[Any]:
        """Fetch every remaining row."""
        rows, self._buffer = self._buffer, []
        return rows + list(await self._fetch(self.raw.fetchall))

    async def close(self) -> None:
        """Close the cursor (after the connection went back: nothing, the pool did)."""
        if self._conn.released:
            return
        if self._local_close:
            self.raw.close()
        else:
            await self._conn.run(self.raw.close)
        self._conn._closed_cursor(self.raw)

    @property
    def description(self) -> Any:
        """Return the driver cursor's ``description``."""
        return self.raw.description

    @property
    def rowcount(self) -> int:
        """Return the driver cursor's ``rowcount``."""
        return int(self.raw.rowcount)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __aiter__(self) -> AsyncCursor:
        return self

    async def __anext__(self) -> Any:
        if not self._buffer:
            self._buffer = list(
                await self._fetch(self.raw.fetchmany, max(self.raw.arraysize, ITERATION_BATCH))
            )
            if not self._buffer:
                raise StopAsyncIteration
        return self._buffer.pop(0)

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._conn.released:
            await self.close()
