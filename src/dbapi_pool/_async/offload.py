"""The async pool's driver I/O: its threads, and connecting, resetting, closing, pinging.

:class:`~dbapi_pool._async.pool.AsyncConnectionPool` decides what to do; this half runs
each driver call in a thread the pool owns and reports the outcome to the core on the
loop. Every outcome arrives through the threads' ``Inbox``, so all bookkeeping stays on
the loop thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from .._base import PoolBase
from .._core import Entry, Plan
from ..config import connect_keywords, is_coroutine_function
from ..errors import ConnectTimeout, PoolError
from .hooks import AsyncHooks, configure_then
from .threads import ConnectionInfo, ConnectionThread, Inbox

__all__ = ["ConnectOutcome", "OffloadingPool", "resolve_with_none"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic
_T = TypeVar("_T")

#: Called on the loop with a connect's thread and outcome: ``(thread, ok, value)``.
ConnectOutcome = Callable[[ConnectionThread, bool, Any], None]


def resolve_with_none(fut: asyncio.Future[None], _: object = None) -> None:
    if not fut.done():
        fut.set_result(None)


class OffloadingPool(PoolBase):
    """Run an async pool's driver calls in its threads; see ``AsyncConnectionPool``."""

    _loop: asyncio.AbstractEventLoop | None
    _inbox: Inbox
    _awaits_connect_args = True

    def _setup(self) -> None:
        self._loop = None
        self._free_threads: list[ConnectionThread] = []
        self._threads_made = 0
        self._service: ConnectionThread | None = None
        #: Resolved when no close is left running (``close()`` waits for it).
        self._drained: asyncio.Future[None] | None = None
        #: ``connect_args`` when it is a coroutine function: awaited on the loop.
        self._fetch_args: Callable[[], Awaitable[Mapping[str, Any]]] | None = None
        if is_coroutine_function(self._connect_args):
            self._fetch_args = self._connect_args  # type: ignore[assignment]
        self._hooks = AsyncHooks(self.name, self.profile, self._policy)
        #: Its last result, for the short-lived sessions of a server-side cancel.
        self._latest_args: Mapping[str, Any] | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self._last_connect_error: BaseException | None = None
        #: Callers of ``wait_ready()``: resolved once ``min_size`` connections are open.
        self._ready_waiters: list[asyncio.Future[None]] = []

    # -- threads -------------------------------------------------------------------------

    def _start_threads(self, loop: asyncio.AbstractEventLoop) -> None:
        # Started ahead of need: a thread start on the first burst lags the loop
        # (research/concurrency.md).
        self._inbox = Inbox(loop)
        self._free_threads = [self._new_thread() for _ in range(self._config.max_size)]
        self._service = ConnectionThread(self._inbox, f"dbapi-pool {self.name} service")

    def _new_thread(self) -> ConnectionThread:
        self._threads_made += 1
        return ConnectionThread(self._inbox, f"dbapi-pool {self.name} #{self._threads_made}")

    def _take_thread(self) -> ConnectionThread:
        if self._free_threads:
            return self._free_threads.pop()
        # Only when a slot's thread is still finishing a close; rare, so start one now.
        return self._new_thread()

    def _release_thread(self, thread: ConnectionThread) -> None:
        if self._state.closed or len(self._free_threads) >= self._config.max_size:
            thread.stop()
        else:
            self._free_threads.append(thread)

    def _fit_threads(self) -> None:
        """Keep one free thread per slot not taken, after ``max_size`` changed."""
        wanted = max(0, self._config.max_size - self._state.size)
        while len(self._free_threads) < wanted:
            self._free_threads.append(self._new_thread())
        while len(self._free_threads) > wanted:
            self._free_threads.pop().stop()

    def _stop_threads(self) -> None:
        for thread in self._free_threads:
            thread.stop()
        self._free_threads = []
        if self._service is not None:
            self._service.stop()

    # -- connecting ----------------------------------------------------------------------

    def _open_on_thread(self, extra: Mapping[str, Any] | None) -> tuple[Any, Any]:
        """Connect, configure (a plain hook), read the session id while surely idle."""
        conn = self._connect_driver() if extra is None else self._connect_with(extra)
        if self._hooks.plain_configure:
            self._policy.configure_new(conn)  # closes the connection if it fails
        session_id = None
        if self.profile.session_id is not None:
            try:
                session_id = self.profile.session_id(conn)
            except BaseException:
                self._close_quietly(conn, "connect_failed")
                raise
        return conn, session_id

    def _connect_with(self, extra: Mapping[str, Any]) -> Any:
        """Open one driver connection with ``connect_args`` already awaited (``extra``)."""
        kwargs = {**self._user_kwargs, **extra}
        kwargs = self.profile.connect_kwargs(kwargs, self._config.connect_timeout)
        return self.module.connect(*self._args, **kwargs)

    def _start_connect(self, timed_outcome: Callable[..., None]) -> None:
        """Open a connection into a slot the core reserved; ``timed_outcome`` gets the
        time the connect began, then the ``ConnectOutcome`` arguments."""
        outcome: ConnectOutcome = partial(timed_outcome, _monotonic())
        thread = self._take_thread()
        if self._hooks.configure is not None:
            outcome = partial(configure_then, self, outcome)
        if self._fetch_args is None:
            thread.call(partial(outcome, thread), self._open_on_thread, None)
            return
        assert self._loop is not None
        task = self._loop.create_task(self._fetch_then_open(thread, outcome))
        self._fetches.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._fetches.discard)

    async def _fetch_then_open(self, thread: ConnectionThread, outcome: ConnectOutcome) -> None:
        """Await the coroutine ``connect_args`` on the loop (a token fetch is network I/O
        of its own), then connect in the thread with its result.

        A task of its own, not the caller's: a caller that gives up leaves it running, and
        its outcome frees the slot like a late connect's.
        """
        assert self._fetch_args is not None
        limit = self._config.connect_timeout
        try:
            extra = connect_keywords(self.name, await asyncio.wait_for(self._fetch_args(), limit))
        except asyncio.TimeoutError:
            outcome(thread, False, self._args_timeout(limit))
            return
        except asyncio.CancelledError:  # the loop is shutting down: free the slot
            outcome(thread, False, PoolError(f"pool {self.name!r}: connect_args cancelled"))
            raise
        except Exception as exc:
            outcome(thread, False, exc)
            return
        self._latest_args = extra
        thread.call(partial(outcome, thread), self._open_on_thread, extra)

    def _args_timeout(self, limit: float | None) -> ConnectTimeout:
        return ConnectTimeout(
            f"pool {self.name!r}: connect_args took longer than connect_timeout={limit:g} s"
        )

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Entry:
        """Open a connection into the slot the core reserved for this caller."""
        fut: asyncio.Future[Entry] = loop.create_future()
        self._start_connect(partial(self._connect_outcome, fut))
        limit = self._config.connect_timeout
        timer = None
        if limit is not None:
            timer = loop.call_later(limit, self._connect_timed_out, fut, limit)
        try:
            return await fut
        finally:
            if timer is not None:
                timer.cancel()

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
        self,
        fut: asyncio.Future[Entry],
        began: float,
        thread: ConnectionThread,
        ok: bool,
        value: Any,
    ) -> None:
        """Take a connect's outcome on the loop: to its caller, or closed if it gave up."""
        if fut.done():  # timed out or cancelled: the slot is freed only now
            self._connected_too_late(thread, ok, value)
            return
        if not ok:
            self._last_connect_error = value
            self._release_thread(thread)
            failures, _ = self._run_core(
                self._counted, self._state.connect_failed, _monotonic(), value
            )
            self._connect_done(value, failures)
            fut.set_exception(value)
            return
        conn, session_id = value
        info = ConnectionInfo(thread, session_id)
        now = _monotonic()
        failures, entry = self._run_core(
            self._counted, self._state.connected, conn, now, info, began
        )
        self._connect_done(None, failures, conn, now - began)
        self._notify_ready()
        if entry is None:
            fut.set_exception(self._state.closed_error())
        else:
            fut.set_result(entry)

    def _connected_too_late(self, thread: ConnectionThread, ok: bool, value: Any) -> None:
        """Close a connection whose caller gave up meanwhile; free its slot after."""
        if ok:
            thread.call(
                partial(self._late_closed, thread), self._close_quietly, value[0], "late_connect"
            )
        else:
            self._late_closed(thread, False, None, closed=False)

    def _counted(self, op: Callable[..., _T], *args: Any) -> tuple[int, _T]:
        """Record a connect's outcome in the core (under the lock): return the failed
        connects in a row before it (for ``_log_connect``) and ``op(*args)``."""
        failures = self._state.health.failures
        return failures, op(*args)

    def _late_closed(
        self, thread: ConnectionThread, ok: bool, value: Any, *, closed: bool = True
    ) -> None:
        self._release_thread(thread)
        self._run_core(partial(self._state.connect_abandoned, closed=closed))

    def _start_pool_connect(self) -> asyncio.Future[None]:
        """Open a connection for the pool itself (refill to min_size)."""
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._start_connect(partial(self._pool_connect_outcome, fut))
        return fut

    def _pool_connect_outcome(
        self,
        fut: asyncio.Future[None],
        began: float,
        thread: ConnectionThread,
        ok: bool,
        value: Any,
    ) -> None:
        if ok:
            conn, session_id = value
            info = ConnectionInfo(thread, session_id)
            now = _monotonic()
            failures, _ = self._run_core(
                self._counted, self._state.add_idle, conn, now, info, began
            )
            self._connect_done(None, failures, conn, now - began)
            self._notify_ready()
        else:
            self._last_connect_error = value
            self._release_thread(thread)
            failures, _ = self._run_core(
                self._counted, self._state.connect_failed, _monotonic(), value
            )
            self._connect_done(value, failures)
            # The maintenance round planned this refill before the outcome: it must learn
            # when to try again (the backoff), or min_size waits for its next wake-up.
            self._wake_maintenance()
        if not fut.done():
            fut.set_result(None)

    def _wake_maintenance(self) -> None:
        """Have the maintenance task run a round now (``maintenance.py``)."""

    def _notify_ready(self) -> None:
        """Wake the ``wait_ready()`` callers once ``min_size`` connections are open."""
        if not self._ready_waiters:
            return
        with self._lock:
            ready = self._state.ready
        if ready:
            for fut in self._ready_waiters:
                if not fut.done():
                    fut.set_result(None)
            self._ready_waiters.clear()

    # -- closing -------------------------------------------------------------------------

    def _carry_out(self, plan: Plan) -> list[asyncio.Future[None]]:
        """Start, without waiting, the work the core asked for; return refill futures.

        Each connection to close gets a future (``info.closed``) resolved once its
        driver's ``close()`` has returned, for the operations that wait for their closes.
        """
        for waiter in plan.wake:
            if not waiter.signal.done():
                waiter.signal.set_result(None)
        loop = self._loop
        for entry in plan.close:
            info: ConnectionInfo = entry.info
            if loop is not None:
                info.closed = loop.create_future()
            info.thread.call(
                partial(self._entry_closed, entry),
                self._close_quietly,
                entry.conn,
                entry.close_reason or "pool_closed",
            )
        return [self._start_pool_connect() for _ in range(plan.connect)]

    #: Closes run in the connections' threads: the listeners hear of them on the loop.
    _close_events_here = False

    def _entry_closed(self, entry: Entry, ok: bool, value: Any) -> None:
        info: ConnectionInfo = entry.info
        self._release_thread(info.thread)
        if self._events:
            self._emit_closes([(entry.conn, entry.close_reason or "pool_closed")])
        closing = self._run_core(self._record_closed, entry)
        self._refill_after_close()
        if info.closed is not None and not info.closed.done():
            info.closed.set_result(None)
        if closing == 0 and self._drained is not None:
            if not self._drained.done():
                self._drained.set_result(None)
            self._drained = None

    def _refill_after_close(self) -> None:
        """Have a slot freed by a close refilled up to ``min_size`` soon.

        The core plans refills when asked (``maintain()``); a drain or resize asked while
        the closes still held their slots, so the maintenance task is woken rather than
        left to its next deadline (up to a minute later without ``max_idle``).
        """
        if self._state.short_of_min:
            self._wake_maintenance()

    def _record_closed(self, entry: Entry) -> int:
        """Record one close (under the lock); return how many are still running."""
        self._state.entries_closed([entry])
        return self._state.closing

    def _closes_planned_by(self, op: Callable[..., object], *args: Any) -> list[Entry]:
        """Run a core operation (under the lock); return the entries its plan closes."""
        op(*args)
        plan = self._state.plan
        return [] if plan is None else list(plan.close)

    async def _closes_done(self, entries: list[Entry]) -> None:
        """Wait until the driver's ``close()`` of each of these entries has returned."""
        waits = [e.info.closed for e in entries if e.info.closed is not None]
        if waits:
            # Shielded: a caller that gives up must not cancel the futures the closes
            # resolve; the closes go on regardless.
            await asyncio.shield(asyncio.gather(*waits))

    async def _all_closed(self) -> None:
        """Wait until no close is left running (those started by anyone)."""
        while self._state.closing:
            if self._drained is None:
                assert self._loop is not None
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)
