"""AsyncConnectionPool: the asyncio front-end of the pool core, for blocking drivers.

Every blocking driver call runs in a thread the pool owns (one per connection, started at
``open()``), so the event loop keeps serving while queries run. All bookkeeping happens on
the loop thread: outcomes of the threads' jobs come back through one ``Inbox``.
The core and its lock are the same as the threaded pool's.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from functools import partial
from types import TracebackType
from typing import Any

from .._base import PoolBase
from .._core import CONNECT, Entry, Plan, Waiter
from .._drivers import rollback
from ..config import call_timeout
from ..errors import ConnectTimeout, WrongEventLoop
from .connection import AsyncPooledConnection
from .threads import ConnectionThread, Inbox

__all__ = ["AsyncConnectionPool"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic
_INF = float("inf")

#: How long the maintenance task sleeps when no deadline is known.
IDLE_WAKE = 60.0


class _Info:
    """What the async front-end keeps per connection: its thread and server session id."""

    __slots__ = ("session_id", "thread")

    def __init__(self, thread: ConnectionThread, session_id: Any) -> None:
        self.thread = thread
        self.session_id = session_id


class AsyncConnectionPool(PoolBase):
    """Pool connections of any blocking DB-API 2.0 driver for asyncio.

    Same settings as :class:`~dbapi_pool.ConnectionPool`. Loop-bound objects are made at
    :meth:`open` (or on first use, or by ``async with pool:``), never in ``__init__``; the
    pool then belongs to that loop, and using it from another raises ``WrongEventLoop``.
    """

    def _setup(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free_threads: list[ConnectionThread] = []
        self._service: ConnectionThread | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        #: One timer for all waiters' deadlines, armed for the earliest (a timer per wait
        #: cost about 7 % of throughput with 200 tasks on 8 connections, measured).
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = _INF

    def _forked(self) -> None:
        # Threads and the loop did not survive the fork: the child opens afresh.
        self._setup()

    # -- opening -------------------------------------------------------------------------

    async def open(self) -> None:
        """Bind the pool to the running loop, start its threads, open ``min_size``."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._bind(loop)
        with self._lock:
            self._state.maintain(_monotonic())
            plan = self._state.take_plan()
        if plan is not None:
            await asyncio.gather(*self._carry_out(plan))

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            raise WrongEventLoop(
                f"pool {self.name!r} belongs to another event loop; create one pool per loop"
            )
        if self._state.closed:
            raise self._state.closed_error()
        self._loop = loop
        # Started ahead of need: a thread start on the first burst lagged the loop by up
        # to 36 ms here (research/concurrency.md).
        self._inbox = Inbox(loop)
        self._free_threads = [self._new_thread(i) for i in range(self._config.max_size)]
        self._service = ConnectionThread(self._inbox, f"dbapi-pool {self.name} service")
        config = self._config
        if (
            config.max_idle is not None
            or config.max_age is not None
            or config.leak_timeout is not None
            or config.min_size
        ):
            self._maintenance = loop.create_task(
                _maintenance(weakref.ref(self)), name=f"dbapi-pool maintenance {self.name}"
            )
        logger.info("pool %r: opened (max_size=%d)", self.name, config.max_size)

    def _new_thread(self, number: int) -> ConnectionThread:
        return ConnectionThread(self._inbox, f"dbapi-pool {self.name} #{number}")

    def _bound_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        return loop

    # -- checkout ------------------------------------------------------------------------

    async def get(self, timeout: float | None = None) -> AsyncPooledConnection:
        """Check out a connection, waiting up to ``timeout`` seconds.

        Same rules as ``ConnectionPool.get()``: ``timeout=None`` means the pool's
        ``timeout`` setting, ``math.inf`` no limit; newest idle first, a new connection
        while below ``max_size``, else wait in line. A task cancelled while it waits
        loses no slot; a connection already handed to it goes back to the pool.
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
        while True:
            got = self._checkout(loop, start, timeout)
            if type(got) is Waiter:  # only now a coroutine: the uncontended path has none
                got = await self._wait(loop, got)
            if got is CONNECT:
                return await self._connect(loop)
            # A connection that fails its check is replaced within the same deadline.
            if not self._validates:
                break
            usable = self._quick_check(got)
            if usable is None:  # a ping decides: a hop to the connection's thread
                usable = await self._ping_check(got)
            if usable:
                break
        if self._state.lent is not None:
            self._record_borrower(got)
        return AsyncPooledConnection(self, got)

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

    def _quick_check(self, entry: Entry) -> bool | None:
        """Check an idle connection without I/O: usable, dead (then replaced), or ``None``
        when only a ping can tell."""
        try:
            if self._needs_ping(entry, _monotonic()):
                return None
        except Exception as exc:
            self._check_failed(exc)
            self._return(entry, reason="failed_check")
            return False
        return True

    async def _ping_check(self, entry: Entry) -> bool:
        fut = entry.info.thread.submit(self.profile.ping, entry.conn)
        try:
            await fut
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
        with self._lock:
            self._state.cancel_waiter(waiter, _monotonic(), timed_out=False)
            plan = self._state.take_plan()
        if plan is not None:
            self._carry_out(plan)

    # -- connecting ----------------------------------------------------------------------

    def _open_on_thread(self) -> tuple[Any, Any]:
        """Connect, and read the session id while the connection is surely idle."""
        conn = self._connect_driver()
        session_id = None
        if self.profile.session_id is not None:
            try:
                session_id = self.profile.session_id(conn)
            except BaseException:
                self._close_quietly(conn, "connect_failed")
                raise
        return conn, session_id

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> AsyncPooledConnection:
        """Open a connection into the slot the core reserved for this caller."""
        thread = self._take_thread()
        fut: asyncio.Future[Entry] = loop.create_future()
        thread.call(partial(self._connect_outcome, thread, fut), self._open_on_thread)
        limit = self._config.connect_timeout
        timer = None
        if limit is not None:
            timer = loop.call_later(limit, self._connect_timed_out, fut, limit)
        try:
            entry = await fut
        finally:
            if timer is not None:
                timer.cancel()
        if self._state.lent is not None:
            self._record_borrower(entry)
        return AsyncPooledConnection(self, entry)

    def _connect_timed_out(self, fut: asyncio.Future[Entry], limit: float) -> None:
        if fut.done():
            return
        with self._lock:
            self._state.count_connect_timeout()
            counts = self._state.counts()
        fut.set_exception(
            ConnectTimeout(
                f"pool {self.name!r}: connecting took longer than connect_timeout="
                f"{limit:g} s ({counts})"
            )
        )

    def _connect_outcome(
        self, thread: ConnectionThread, fut: asyncio.Future[Entry], ok: bool, value: Any
    ) -> None:
        """Take a connect's outcome on the loop: to its caller, or closed if it gave up."""
        if fut.done():  # timed out or cancelled: the slot is freed only now
            if ok:
                thread.call(
                    partial(self._late_closed, thread),
                    self._close_quietly,
                    value[0],
                    "late_connect",
                )
            else:
                self._late_closed(thread, False, None, closed=False)
            return
        if not ok:
            with self._lock:
                failures = self._state.health.failures
                self._state.connect_failed(_monotonic(), value)
                plan = self._state.take_plan()
            self._log_connect(value, failures)
            self._release_thread(thread)
            if plan is not None:
                self._carry_out(plan)
            fut.set_exception(value)
            return
        conn, session_id = value
        with self._lock:
            failures = self._state.health.failures
            entry = self._state.connected(conn, _monotonic(), _Info(thread, session_id))
            plan = self._state.take_plan()
        self._log_connect(None, failures)
        if plan is not None:
            self._carry_out(plan)
        if entry is None:
            fut.set_exception(self._state.closed_error())
        else:
            fut.set_result(entry)

    def _late_closed(
        self, thread: ConnectionThread, ok: bool, value: Any, *, closed: bool = True
    ) -> None:
        self._release_thread(thread)
        with self._lock:
            self._state.connect_abandoned(closed=closed)
            plan = self._state.take_plan()
        if plan is not None:
            self._carry_out(plan)

    def _start_pool_connect(self) -> asyncio.Future[None]:
        """Open a connection for the pool itself (refill to min_size)."""
        assert self._loop is not None
        thread = self._take_thread()
        fut: asyncio.Future[None] = self._loop.create_future()
        thread.call(partial(self._pool_connect_outcome, thread, fut), self._open_on_thread)
        return fut

    def _pool_connect_outcome(
        self, thread: ConnectionThread, fut: asyncio.Future[None], ok: bool, value: Any
    ) -> None:
        with self._lock:
            failures = self._state.health.failures
            if ok:
                conn, session_id = value
                self._state.add_idle(conn, _monotonic(), _Info(thread, session_id))
            else:
                self._state.connect_failed(_monotonic(), value)
            plan = self._state.take_plan()
        self._log_connect(None if ok else value, failures)
        if not ok:
            self._release_thread(thread)
        if plan is not None:
            self._carry_out(plan)
        if not fut.done():
            fut.set_result(None)

    def _take_thread(self) -> ConnectionThread:
        if self._free_threads:
            return self._free_threads.pop()
        # Only when a slot's thread is still finishing a close; rare, so start one now.
        return self._new_thread(self._config.max_size)

    def _release_thread(self, thread: ConnectionThread) -> None:
        if self._state.closed or len(self._free_threads) >= self._config.max_size:
            thread.stop()
        else:
            self._free_threads.append(thread)

    # -- return --------------------------------------------------------------------------

    async def put(self, conn: AsyncPooledConnection) -> None:
        """Return a connection: reset it in its thread, then hand it on or keep it idle.

        The same rules as ``ConnectionPool.put()``. If the awaiting task is cancelled, the
        return still completes.
        """
        if type(conn) is not AsyncPooledConnection or conn._pool is not self:
            raise self._foreign(conn)
        entry = conn._release()
        if entry is None or (entry.owner is not self._state and self._inherited(entry)):
            return
        done = self._return(entry, wait=True, cursors=conn._open_cursors())
        if done is not None:
            await done

    def _return(
        self,
        entry: Entry,
        *,
        wait: bool = False,
        cancelled: bool = False,
        reason: str | None = None,
        cursors: list[Any] | None = None,
    ) -> asyncio.Future[None] | None:
        """Reset (or close) a returned connection in its thread, then check it in.

        ``cursors``: the checkout's driver cursors still open, closed first in the same
        job (a closed connection ends them too). With ``wait``, return a future resolved
        once that is done, or ``None`` if it was done at once (nothing to reset or close:
        no future, no hop).
        """
        if reason is None:
            reason = self._state.retire_reason(entry, _monotonic()) or self._broken(entry.conn)
        if reason is not None:
            job: tuple[Any, ...] = (self._close_job, entry.conn, reason)
        elif cancelled:
            # The transaction may be aborted by the cancel: always roll back first.
            job = (self._reset_job, entry.conn, self._reset or rollback, cursors)
        elif self._needs_reset(entry.conn):
            job = (self._reset_job, entry.conn, self._reset, cursors)
        elif cursors is not None:
            job = (self._reset_job, entry.conn, None, cursors)
        else:
            self._returned(entry, None, True, None)
            return None
        done = self._loop.create_future() if wait and self._loop is not None else None
        entry.info.thread.call(partial(self._returned, entry, done), *job)
        return done

    def _reset_job(self, conn: Any, reset: Any, cursors: list[Any] | None) -> str | None:
        try:
            for cursor in cursors or ():
                cursor.close()
            if reset is not None:
                reset(conn)
        except Exception as exc:
            reason = self._reset_failed(exc)
            self._close_quietly(conn, reason)
            return reason
        return None

    def _close_job(self, conn: Any, reason: str) -> str:
        self._close_quietly(conn, reason)
        return reason

    def _returned(
        self, entry: Entry, done: asyncio.Future[None] | None, ok: bool, reason: Any
    ) -> None:
        if not ok:  # the reset itself died (not an Exception): close and drop it
            entry.info.thread.call(
                partial(self._returned, entry, done), self._close_job, entry.conn, "reset_failed"
            )
            return
        if reason is not None:
            self._release_thread(entry.info.thread)
        with self._lock:
            self._state.checkin(entry, _monotonic(), reason)
            plan = self._state.take_plan() if self._state.plan is not None else None
        if plan is not None:
            self._carry_out(plan)
        if done is not None and not done.done():
            done.set_result(None)

    def _cancelled_mid_call(self, conn: AsyncPooledConnection) -> None:
        """Take back a connection whose caller was cancelled while its call ran.

        The call goes on in the connection's thread; the server is asked to stop it, and
        the reset queued behind it runs only once it has returned: the connection is
        never reused mid-call (a 1.9 s stall with psycopg2, a corrupted protocol with
        PyMySQL, measured in research/concurrency.md).
        """
        entry = conn._release()
        if entry is None:
            return
        info: _Info = entry.info
        cancel = self.profile.cancel
        if info.thread.busy and self._service is not None:
            if cancel is None:
                # Nothing can stop it: let it finish, then close rather than reuse.
                info.thread.call(
                    partial(self._returned, entry, None), self._close_job, entry.conn, "cancelled"
                )
                return
            self._service.call(
                self._cancel_outcome, cancel, self._connect_driver, entry.conn, info.session_id
            )
        self._return(entry, cancelled=True, cursors=conn._open_cursors())

    def _cancel_outcome(self, ok: bool, value: Any) -> None:
        if not ok:
            logger.warning(
                "pool %r: could not cancel a call on the server (%s: %s)",
                self.name,
                type(value).__name__,
                value,
            )

    # -- background work -----------------------------------------------------------------

    def _carry_out(self, plan: Plan) -> list[asyncio.Future[None]]:
        """Start, without waiting, the work the core asked for; return refill futures."""
        for waiter in plan.wake:
            if not waiter.signal.done():
                waiter.signal.set_result(None)
        for entry in plan.close:
            entry.info.thread.call(
                partial(self._entry_closed, entry),
                self._close_quietly,
                entry.conn,
                entry.close_reason or "pool_closed",
            )
        return [self._start_pool_connect() for _ in range(plan.connect)]

    def _entry_closed(self, entry: Entry, ok: bool, value: Any) -> None:
        self._release_thread(entry.info.thread)
        with self._lock:
            self._state.entries_closed([entry])
            plan = self._state.take_plan()
            drained = self._state.closing == 0
        if plan is not None:
            self._carry_out(plan)
        if drained and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- the rest of the surface ---------------------------------------------------------

    def connection(self, timeout: float | None = None) -> _Lending:
        """Lend a connection for an ``async with`` block: commit at the end, roll back on
        an exception, and always return it to the pool."""
        return _Lending(self, timeout)

    async def close(self) -> None:
        """Close the pool: idle connections now, checked-out ones when returned.

        Waiting tasks get ``PoolClosed``; so does every later ``get()``. Waits for the idle
        connections' closes, then lets the pool's idle threads exit.
        """
        if self._abandoned:
            self._collect_abandoned()
        with self._lock:
            already = self._state.closed
            self._state.close()
            plan = self._state.take_plan()
            closing = self._state.closing
        if self._loop is None:
            return
        if closing and self._drained is None:
            self._drained = self._loop.create_future()
        if plan is not None:
            self._carry_out(plan)
        if self._maintenance is not None:
            self._maintenance.cancel()
            self._maintenance = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep, self._sweep_at = None, _INF
        if self._drained is not None and closing:
            await asyncio.shield(self._drained)
        for thread in self._free_threads:
            thread.stop()
        self._free_threads = []
        if self._service is not None:
            self._service.stop()
        if not already:
            logger.info("pool %r: closed", self.name)

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


class _Lending:
    """``async with pool.connection() as conn``: one plain object, not a generator-based
    context manager (two layers of those cost measurably per checkout)."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: AsyncConnectionPool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._conn: AsyncPooledConnection | None = None

    async def __aenter__(self) -> AsyncPooledConnection:
        self._conn = await self._pool.get(self._timeout)
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.__aexit__(exc_type, exc, tb)


async def _maintenance(ref: weakref.ref[AsyncConnectionPool]) -> None:
    """Run the pool's maintenance at the deadlines it returns, holding it only weakly."""
    while True:
        pool = ref()
        if pool is None or pool.closed:
            return
        try:
            delay = pool._maintain()
        except Exception:
            logger.exception("pool %r: maintenance failed; retrying in 1 s", pool.name)
            delay = 1.0
        del pool
        await asyncio.sleep(IDLE_WAKE if delay is None else delay)
