"""One statement on a pooled connection in one call: ``pool.execute()``, ``fetchone()``,
``fetchall()``, ``fetchval()`` (asyncpg's shortcuts), for both front-ends.

Each checks a connection out with ``pool.connection()`` (so it commits at the end, rolls
back on an error, and shows in ``holders()`` with its tag), runs the statement on one
cursor, closes the cursor and returns plain data. The statement, its fetch and the
cursor's close are one job (:func:`run_statement`): one offloaded hop on a green pool that
offloads, one hop to the connection's thread on an asyncio pool, never a blocking call on
the loop. The driver's errors pass through as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ._core.holders import WRAPPERS, skip_in_sites

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager, AbstractContextManager

    from ._core import Entry

__all__ = ["AsyncShortcuts", "Shortcuts", "run_statement"]


def _rowcount(cursor: Any) -> int:
    return int(cursor.rowcount)


def _fetchone(cursor: Any) -> Any:
    return cursor.fetchone()


def _fetchall(cursor: Any) -> list[Any]:
    return list(cursor.fetchall())  # PyMySQL and MySQLdb return a tuple of rows


def _fetchval(cursor: Any) -> Any:
    row = cursor.fetchone()
    if row is None:
        return None
    if isinstance(row, Mapping):  # a dict cursor (PyMySQL's DictCursor, psycopg's dict_row)
        return next(iter(row.values()), None)
    return row[0]


def run_statement(conn: Any, sql: str, params: Any, fetch: Callable[[Any], Any]) -> Any:
    """Run ``sql`` on a new cursor of the driver connection ``conn``, return
    ``fetch(cursor)`` and close the cursor (also after an error, which then wins)."""
    cursor = conn.cursor()
    try:
        if params is None:  # some drivers (sqlite3) refuse params=None
            cursor.execute(sql)
        else:
            cursor.execute(sql, params)
        result = fetch(cursor)
    except BaseException:
        try:
            cursor.close()
        except Exception:
            pass  # the statement's error is the one to see
        raise
    cursor.close()
    return result


class _SyncPool(Protocol):
    def connection(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> AbstractContextManager[Any]: ...

    def _call(self, fn: Any, *args: Any) -> Any: ...

    def _note_holder(self, entry: Entry, tag: str | None, depth: int) -> None: ...


class _AsyncPool(Protocol):
    def connection(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> AbstractAsyncContextManager[Any]: ...


class Shortcuts:
    """``ConnectionPool``'s one-statement shortcuts (each a checkout of its own)."""

    def execute(self: _SyncPool, sql: str, params: Any = None, *, tag: str | None = None) -> int:
        """Run one statement and commit; return the driver's ``rowcount``."""
        return _run(self, sql, params, _rowcount, tag)  # type: ignore[no-any-return]

    def fetchone(self: _SyncPool, sql: str, params: Any = None, *, tag: str | None = None) -> Any:
        """Run one query; return its first row (as the driver makes rows), or ``None``."""
        return _run(self, sql, params, _fetchone, tag)

    def fetchall(
        self: _SyncPool, sql: str, params: Any = None, *, tag: str | None = None
    ) -> list[Any]:
        """Run one query; return the list of its rows."""
        return _run(self, sql, params, _fetchall, tag)  # type: ignore[no-any-return]

    def fetchval(self: _SyncPool, sql: str, params: Any = None, *, tag: str | None = None) -> Any:
        """Run one query; return the first column of its first row, or ``None``."""
        return _run(self, sql, params, _fetchval, tag)


def _run(pool: _SyncPool, sql: str, params: Any, fetch: Callable[[Any], Any], tag: Any) -> Any:
    """Check out, run the statement in one job (offloaded if the pool offloads), return."""
    with pool.connection(tag=tag) as conn:
        entry = conn._entry
        if id(entry.site) in WRAPPERS:
            # get()'s quick path names its caller's caller: these frames, not the user's.
            pool._note_holder(entry, tag, 1)
        return pool._call(run_statement, conn.raw, sql, params, fetch)


class AsyncShortcuts:
    """``AsyncConnectionPool``'s one-statement shortcuts: one ``await`` each."""

    async def execute(
        self: _AsyncPool, sql: str, params: Any = None, *, tag: str | None = None
    ) -> int:
        """Run one statement and commit; return the driver's ``rowcount``."""
        return await _run_async(self, sql, params, _rowcount, tag)  # type: ignore[no-any-return]

    async def fetchone(
        self: _AsyncPool, sql: str, params: Any = None, *, tag: str | None = None
    ) -> Any:
        """Run one query; return its first row (as the driver makes rows), or ``None``."""
        return await _run_async(self, sql, params, _fetchone, tag)

    async def fetchall(
        self: _AsyncPool, sql: str, params: Any = None, *, tag: str | None = None
    ) -> list[Any]:
        """Run one query; return the list of its rows."""
        return await _run_async(self, sql, params, _fetchall, tag)  # type: ignore[no-any-return]

    async def fetchval(
        self: _AsyncPool, sql: str, params: Any = None, *, tag: str | None = None
    ) -> Any:
        """Run one query; return the first column of its first row, or ``None``."""
        return await _run_async(self, sql, params, _fetchval, tag)


async def _run_async(
    pool: _AsyncPool, sql: str, params: Any, fetch: Callable[[Any], Any], tag: Any
) -> Any:
    """Check out, run the statement as one job in the connection's thread, return."""
    async with pool.connection(tag=tag) as conn:
        return await conn.run(run_statement, conn.raw, sql, params, fetch)


# A checkout's site is the caller of the shortcut, not these frames.
skip_in_sites(
    _run,
    _run_async,
    *(getattr(Shortcuts, name) for name in ("execute", "fetchone", "fetchall", "fetchval")),
    *(getattr(AsyncShortcuts, name) for name in ("execute", "fetchone", "fetchall", "fetchval")),
)
