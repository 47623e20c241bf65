"""AsyncConnectionPool: the asyncio front-end of the pool core, for blocking drivers.

Every blocking driver call runs in a thread the pool owns (one per connection, started at
``open()``), so the event loop keeps serving while queries run. All bookkeeping happens on
the loop thread: outcomes of the threads' jobs come back through one ``Inbox``.
The core and its lock are the same as the threaded pool's. This module decides; the
driver calls themselves are in ``offload.py``, the upkeep of idle connections in
``maintenance.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from types import TracebackType
from typing import Any

from .._core import CONNECT, Entry, Waiter
from .._core.holders import skip_in_sites
from .._shortcuts import AsyncShortcuts
from ..config import call_timeout
from ..errors import PoolTimeout
from .connection import AsyncPooledConnection
from .control import AsyncControl
from .hooks import run_check

__all__ = ["AsyncConnectionPool"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic
_INF = float("inf")


class AsyncConnectionPool(AsyncShortcuts, AsyncControl):
    """Pool connections of any blocking DB-API 2.0 driver for asyncio.

    Same settings as :class:`~dbapi_pool.ConnectionPool`. Loop-bound objects are made at
    :meth:`open` (or on first use, or by ``async with pool:``), never in ``__init__``; the
    pool then belongs to that loop, and using it from another raises ``WrongEventLoop``.

    ``connect_args`` may also be a coroutine function (a token fetched over the network):
    it is awaited on the loop for each new connection, within ``connect_timeout``. After
    rotating credentials, ``await pool.drain()`` replaces the connections opened with the
    old ones.

    One statement, one await: ``await pool.execute(sql, params)`` (the ``rowcount``),
    ``fetchone()``, ``fetchall()``, ``fetchval()``: each a checkout of its own, the
    statement, its fetch and the cursor's close one job in the connection's thread.

    Runtime control: ``await resize()``, ``await drain()``, ``pause()``/``resume()``,
    ``await check()``, ``await wait_ready()``. An operation that closes connections
    returns once the driver's ``close()`` of each idle one has returned; connections in
    use are closed when they come back (and that ``put()`` returns after the close).
    """

    def _setup(self) -> None:
        super()._setup()
        #: One timer for all waiters' deadlines, armed for the earliest: a timer per wait
        #: costs throughput (figures in benchmarks/README.md).
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = _INF
        #: The checkout's holder is its asyncio task, by name.
        self._holder_id = _task_name
        self._state.task_holders = True

    def _forked(self) -> None:
        # Threads and the loop did not survive the fork: the child opens afresh.
        self._setup()

    # -- checkout ------------------------------------------------------------------------

    async def get(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> AsyncPooledConnection:
        """Check out a connection, waiting up to ``timeout`` seconds.

        Same rules (and ``tag``) as ``ConnectionPool.get()``. A task cancelled while it
        waits loses no slot; a connection already handed to it goes back to the pool.
        """
        timeout = (
            self._config.timeout if timeout is None else call_timeout(self.name, timeout, None)
        )
        loop = self._loop
        if loop is None or loop is not asyncio.get_running_loop():
            await self.open()
            loop = self._bound_loop()
        if self._abandoned:
            self._collect_abandoned()
        start = _monotonic()
        served_at_once = True
        try:
            while True:
                got = self._checkout(loop, start, timeout)
                if type(got) is Waiter:  # only now a coroutine: the uncontended path has none
                    got = await self._wait(loop, got)
                    served_at_once = False
                if got is CONNECT:
                    return await self._lend_new(loop, start, tag)
                # A connection that fails its check is replaced within the same deadline.
                if not self._policy.validates:
                    break
                usable = self._quick_check(got)
                if usable is None:  # a ping decides: a hop to the connection's thread
                    usable = await self._ping_check(got)
                if usable:
                    break
                served_at_once = False
        except PoolTimeout:
            self._timed_out(start)
            raise
        return self._hand_out(got, start, served_at_once, tag)

    def _hand_out(
        self, entry: Entry, start: float, served_at_once: bool, tag: str | None
    ) -> AsyncPooledConnection:
        """Lend ``entry``: record the wait (0 when ``served_at_once``), the holder, and tell
        the listeners."""
        waited = 0.0
        if not served_at_once:  # the wait goes to the histogram (the others waited 0)
            with self._lock:
                self._state.waited(waited := _monotonic() - start)
        if self._state.lent is not None:
            self._record_borrower(entry)
        self._note_holder(entry, tag, 3)  # _hand_out, get, its caller
        if self._events.checkout:
            self._events.emit("checkout", self, entry.conn, waited)
        return AsyncPooledConnection(self, entry)

    def _checkout(
        self, loop: asyncio.AbstractEventLoop, start: float, timeout: float | None
    ) -> Any:
        """Take an idle entry, a slot to connect into, or a place in line (a Waiter)."""
        state = self._state
        now = _monotonic()
        got: Any = None
        error: BaseException | None = None
        with self._lock:
            try:
                got = state.checkout(now)
                if got is None:
                    left = None if timeout is None else start + timeout - now
                    got = state.add_waiter(now, left, loop.create_future())
            except BaseException as exc:  # refused or failed fast: the plan still runs
                error = exc
            plan = state.take_plan() if state.plan is not None else None
        if plan is not None:
            self._carry_out(plan)
        if error is not None:
            raise error
        return got

    async def _lend_new(
        self, loop: asyncio.AbstractEventLoop, start: float, tag: str | None
    ) -> AsyncPooledConnection:
        """Open a connection into the slot the core reserved for this caller (who called
        ``get()`` at ``start``); lend it."""
        entry = await self._connect(loop)
        with self._lock:
            self._state.waited(waited := _monotonic() - start)
        if self._state.lent is not None:
            self._record_borrower(entry)
        self._note_holder(entry, tag, 3)
        if self._events.checkout:
            self._events.emit("checkout", self, entry.conn, waited)
        return AsyncPooledConnection(self, entry)

    def _quick_check(self, entry: Entry) -> bool | None:
        """Check an idle connection without I/O: usable, dead (then replaced), or ``None``
        when only a ping can tell."""
        try:
            if self._policy.needs_ping(entry, _monotonic(), self._state):
                return None
        except Exception as exc:
            self._check_failed(exc)
            self._return(entry, reason="failed_check")
            return False
        return True

    async def _ping_check(self, entry: Entry) -> bool:
        """Ping an idle connection, or run the ``check`` hook on it, before lending it."""
        hooks = self._hooks
        try:
            if hooks.check is not None:  # a coroutine: awaited here, its calls hop
                await run_check(hooks, entry)
            else:  # the ping, or a plain check, in the connection's thread
                await entry.info.thread.submit(self._policy.lend_check, entry.conn)
        except asyncio.CancelledError:
            self._return(entry, cancelled=True)  # once the ping has returned
            raise
        except Exception as exc:
            self._check_failed(exc)
            self._return(entry, reason="failed_check")
            return False
        return True

    async def get_nowait(self) -> AsyncPooledConnection:
        """Check out a connection without waiting for another caller to return one.

        As ``ConnectionPool.get_nowait()``: opens a new connection if the pool is below
        ``max_size`` (this caller's own work, bounded by ``connect_timeout``: hence a
        coroutine), and raises ``PoolTimeout`` at once if it is full and nothing is idle.
        (An expired idle connection met on the way is closed in its thread, unlike the
        threaded pool's inline close: its slot is not free yet for this call.)
        """
        return await self.get(timeout=0)

    async def _wait(self, loop: asyncio.AbstractEventLoop, waiter: Waiter) -> Any:
        if self._events.wait:
            self._events.emit("wait", self)
        if waiter.deadline < self._sweep_at:
            self._arm_sweep(loop, waiter.deadline)
        try:
            await waiter.signal
        except asyncio.CancelledError:
            # Cancelled before or after a hand-off: either way nothing may be lost.
            self._give_up(waiter)
            raise
        result = waiter.result
        if isinstance(result, BaseException):
            raise result
        return result

    def _arm_sweep(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at = at
        self._sweep = loop.call_later(max(0.0, at - _monotonic()), self._expire_waiters)

    def _expire_waiters(self) -> None:
        """Time out the waiters whose deadline has passed (unless something was handed to
        them first), then arm the timer for the earliest deadline left."""
        self._sweep, self._sweep_at = None, _INF
        now = _monotonic()
        with self._lock:
            expired = self._state.expire_waiters(now)
            earliest = self._state.next_deadline()
        for waiter in expired:
            if not waiter.signal.done():
                waiter.signal.set_exception(waiter.result)
        if earliest < _INF and self._loop is not None:
            self._arm_sweep(self._loop, earliest)

    def _give_up(self, waiter: Waiter) -> None:
        self._run_core(partial(self._state.cancel_waiter, timed_out=False), waiter, _monotonic())

    # -- return --------------------------------------------------------------------------

    async def put(self, conn: AsyncPooledConnection) -> None:
        """Return a connection: reset it in its thread, then hand it on or keep it idle.

        The same rules as ``ConnectionPool.put()``; the driver cursors of the checkout still
        open are closed in the same job, before the reset. If the awaiting task is
        cancelled, the return still completes.
        """
        if type(conn) is not AsyncPooledConnection or conn._pool is not self:
            raise self._foreign(conn)
        entry = conn._release()
        if entry is None or (entry.owner is not self._state and self._inherited(entry)):
            return
        done = self._return(entry, wait=True, cursors=conn._open_cursors())
        if done is not None:
            await done

    # -- the rest of the surface ---------------------------------------------------------

    def connection(self, timeout: float | None = None, *, tag: str | None = None) -> _Lending:
        """Lend a connection for an ``async with`` block: commit at the end, roll back on
        an exception, and always return it to the pool. ``tag`` names the checkout in
        ``holders()`` and timeout messages."""
        return _Lending(self, timeout, tag)

    async def close(self) -> None:
        """Close the pool: idle connections now, checked-out ones when returned.

        Waiting tasks get ``PoolClosed``; so does every later ``get()``. Returns once the
        driver's ``close()`` of every connection it closes has returned (the idle ones,
        those being checked, and closes already running), then lets the threads exit.
        """
        if self._abandoned:
            self._collect_abandoned()
        already = self._run_core(self._close_state)
        if self._loop is None:
            return
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep, self._sweep_at = None, _INF
        closed = self._state.closed_error()
        for fut in self._ready_waiters:
            if not fut.done():
                fut.set_exception(closed)
        await self._stop_maintenance()
        if self._checks:  # given back to a closed pool, so closed: wait for that too
            await asyncio.shield(asyncio.gather(*self._checks))
        await self._all_closed()
        self._stop_threads()
        if not already:
            logger.info("pool %r: closed", self.name)

    def _close_state(self) -> bool:
        """Close the core (under the lock); tell whether it was closed already."""
        already = self._state.closed
        self._state.close()
        return already

    async def __aenter__(self) -> AsyncConnectionPool:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _task_name() -> str | None:
    """Name the current task (its name, not the task: a task keeps its result, which may
    be the very connection, alive; ``holders()`` labels it)."""
    task = asyncio.current_task()
    return None if task is None else task.get_name()


class _Lending:
    """``async with pool.connection() as conn``: one plain object, not a generator-based
    context manager (two layers of those cost measurably per checkout)."""

    __slots__ = ("_conn", "_pool", "_tag", "_timeout")

    def __init__(self, pool: AsyncConnectionPool, timeout: float | None, tag: str | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._tag = tag
        self._conn: AsyncPooledConnection | None = None

    async def __aenter__(self) -> AsyncPooledConnection:
        self._conn = conn = await self._pool.get(self._timeout, tag=self._tag)
        return conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.__aexit__(exc_type, exc, tb)


# A checkout's site is the async with statement, not the pool's own frame.
skip_in_sites(_Lending.__aenter__)
