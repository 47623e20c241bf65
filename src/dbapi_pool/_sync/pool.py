"""ConnectionPool: the blocking front-end of the pool core, for threads and green threads.

Each public method takes the pool's one lock only around core calls (O(1) bookkeeping),
then carries out the core's plan (connect, reset, close, wake) after releasing it: one slow
connect or rollback never stalls callers that an idle connection could serve. How callers
wait, and where blocking driver calls run, is the backend's business (backends.py).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from .._closing import green_wait_readable
from .._core import CONNECT, ConnectGrant, Entry, Plan, Waiter
from .._core.holders import skip_in_sites
from .._shortcuts import Shortcuts
from ..config import call_timeout
from ..errors import PoolTimeout
from ..holders import checkout_tag
from ..proxy import Cursors, OffloadedConnection, PooledConnection, close_cursors, detach
from .backends import Backend, choose_offload, cooperates, get_backend
from .connecting import ConnectingPool
from .worker import MaintenanceWorker

__all__ = ["ConnectionPool"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic
_getframe = sys._getframe
_INF = float("inf")
#: Types of a per-call timeout taken as is when finite and not negative (the fast path).
_PLAIN_NUMBERS = (int, float)


class ConnectionPool(Shortcuts, ConnectingPool):
    """Pool connections of any DB-API 2.0 driver for OS threads or green threads.

    Takes the driver module, its ``connect()`` arguments and the pool settings described
    in :class:`~dbapi_pool._base.PoolBase`. ``min_size`` connections are opened by the
    constructor.

    ``backend``: ``"auto"`` (default) picks gevent or eventlet when ``threading`` is
    monkey-patched by one of them, else OS threads; ``"threads"``, ``"gevent"`` or
    ``"eventlet"`` force one (a green backend works without monkey-patching too).
    ``offload`` (green backends only): ``"auto"`` runs the calls of a driver that would
    block the hub (mysqlclient, sqlite3, psycopg2 without a wait callback...) in an OS
    thread pool, one whole operation per hop, and calls a cooperative driver directly;
    ``True`` or ``False`` force it. A pool that offloads psycopg2 only because psycogreen's
    wait callback is missing says so once, at WARNING, naming the line to add.

    One statement, one call: ``pool.execute(sql, params)`` (the ``rowcount``),
    ``pool.fetchone()``, ``pool.fetchall()``, ``pool.fetchval()`` (the first column of the
    first row): each a checkout of its own through :meth:`connection`.

    ``handoff_after`` is 0 by default, as with every front-end: a returned connection goes
    to the oldest waiter (strict first come, first served). A window (say 0.005) lets a
    running thread take back the connection it just returned while the oldest waiter has
    waited less than that, which spares a futex wake and a GIL hand-over per checkout: more
    throughput when queries are short, but every caller that must wait then waits about the
    whole window, which sets the latency tail (benchmarks/README.md, "The hand-off window").
    """

    def __init__(
        self,
        module: Any,
        *args: Any,
        backend: str = "auto",
        offload: bool | str = "auto",
        **settings: Any,
    ) -> None:
        self._backend_choice = backend
        self._offload_choice = offload
        super().__init__(module, *args, **settings)

    def _setup(self) -> None:
        self._backend: Backend = get_backend(self._backend_choice, self.name)
        self._holder_id = self._backend.holder_id()
        self._offload = self._choose_offload(self._offload_choice)
        self._proxy_type = PooledConnection if self._offload is None else OffloadedConnection
        if self._offload is None and cooperates(self._backend, self.profile.cooperates):
            # Closes run in the green thread, and the driver yields to the hub: so does the
            # wait for the server (a driver that blocks the hub anyway waits blocking).
            self._server_wait = green_wait_readable(self._backend.name)
        #: Makes what get() hands out, from ``(pool, entry)``: a hook for layers that lend
        #: their own wrapper (the eventlet compat module), which then also override put().
        self._make_proxy: Any = self._proxy_type.lend
        self._worker: MaintenanceWorker | None = None
        #: Green backends: waiters sleep without a timer of their own (a green timeout per
        #: wait costs throughput); the maintenance worker times them out, woken for the
        #: earliest deadline, which is kept here.
        self._sweep_at = _INF
        config = self._config
        if self._offload is not None and self._offload_choice == "auto":
            advice = self.profile.green_advice(self._backend.name)
            if advice is not None:  # offloaded for want of one line of the user's
                logger.warning("pool %r: %s", self.name, advice)
        logger.info(
            "pool %r: opened (min_size=%d, max_size=%d, backend=%s%s)",
            self.name,
            config.min_size,
            config.max_size,
            self._backend.name,
            ", offloaded" if self._offload is not None else "",
        )
        if config.min_size:
            try:
                self._maintain()
            except BaseException:
                self.close()
                raise
            self._start_worker()

    def _choose_offload(self, choice: bool | str) -> Any:
        # A few more threads than connections: connects and closes of a full pool.
        size = self._config.max_size + 2
        offload = choose_offload(self._backend, choice, self.profile.cooperates, size, self.name)
        close = getattr(offload, "close", None)
        if close is not None:  # its threads stop when the pool (and all it lent) is gone
            weakref.finalize(self, close)
        return offload

    @property
    def backend(self) -> str:
        """Name the backend in use: ``"threads"``, ``"gevent"`` or ``"eventlet"``."""
        return self._backend.name

    @property
    def offloaded(self) -> bool:
        """Tell whether driver calls run in an OS thread pool (green backends)."""
        return self._offload is not None

    def _call(self, fn: Any, *args: Any) -> Any:
        offload = self._offload
        return fn(*args) if offload is None else offload(fn, *args)

    # -- checkout ------------------------------------------------------------------------

    def get(self, timeout: float | None = None, *, tag: str | None = None) -> PooledConnection:
        """Check out a connection, waiting up to ``timeout`` seconds (``None``: the pool's
        ``timeout`` setting; ``math.inf``: no limit; checked like the setting).

        Reuses the most recently returned idle connection, opens a new one while below
        ``max_size``, or waits its turn (first come, first served) for one to be returned.
        Raises ``PoolTimeout``, ``ConnectTimeout``, ``PoolClosed``, ``TooManyWaiters``, or
        the driver's error. ``tag`` names the checkout in ``holders()`` and timeout
        messages (default: ``dbapi_pool.checkout_tag``)."""
        if self._abandoned:
            self._collect_abandoned()
        if timeout is None:
            timeout = self._config.timeout
        elif type(timeout) not in _PLAIN_NUMBERS or not 0 <= timeout < _INF:
            timeout = call_timeout(self.name, timeout, None)  # refused, or inf: no limit
        start = _monotonic()
        state = self._state
        with self._lock:  # the first look, inline: most checkouts end here
            got = state.checkout(start)
            plan = state.take_plan() if state.plan is not None else None
        if plan is None and type(got) is Entry:
            if not self._policy.validates or self._usable(got):
                if state.lent is not None:
                    self._record_borrower(got)
                # Who holds it, from where, with which tag: slot stores, no allocation.
                got.holder = self._holder_id()
                try:  # one frame object made (_getframe().f_back makes two)
                    caller: Any = _getframe(1)
                    if caller.f_code is _CONNECTION_CODE:  # connection(), contextlib's enter
                        caller = caller.f_back.f_back
                    got.site, got.lasti = caller.f_code, caller.f_lasti  # line: when asked
                except (ValueError, AttributeError):  # no caller: a green thread's function
                    got.site = None
                got.tag = checkout_tag.get() if tag is None else tag
                if self._events.checkout:
                    self._events.emit("checkout", self, got.conn, 0.0)
                return self._make_proxy(self, got)  # type: ignore[no-any-return]
            got = None  # it failed its check: replaced within the same deadline
        return self._checkout_slowly(got, plan, start, timeout, tag)

    def _checkout_slowly(
        self, got: Any, plan: Plan | None, start: float, timeout: float | None, tag: str | None
    ) -> PooledConnection:
        """Go on with a get() whose first look found no usable idle connection: open one,
        or wait in line (``got``, ``plan``: what the first look found)."""
        try:
            if plan is not None:
                self._carry_out(plan)
            while True:
                if got is None:
                    got = self._look_again(start, timeout)
                if type(got) is Waiter:
                    got = self._wait(got, start, timeout)
                if got is CONNECT:
                    return self._connect(start, tag)
                # A connection that fails its check is replaced within the same deadline.
                if not self._policy.validates or self._usable(got):
                    break
                got = None
        except PoolTimeout:
            self._timed_out(start)
            raise
        with self._lock:
            self._state.waited(waited := _monotonic() - start)
        if self._state.lent is not None:
            self._record_borrower(got)
        self._note_holder(got, tag, 3)
        if self._events.checkout:
            self._events.emit("checkout", self, got.conn, waited)
        return self._make_proxy(self, got)  # type: ignore[no-any-return]

    def _queue(self, now: float, start: float, timeout: float | None) -> Waiter:
        """Join the line of waiters (lock held): nothing idle, no slot to connect into."""
        left = None if timeout is None else start + timeout - now
        return self._state.add_waiter(now, left, self._backend.new_signal())

    def _look_again(self, start: float, timeout: float | None) -> Entry | ConnectGrant | Waiter:
        """Take an idle entry or a slot to connect into, or join the line of waiters."""
        state = self._state
        now = _monotonic()
        while True:
            with self._lock:
                got = state.checkout(now)
                plan = state.take_plan() if state.plan is not None else None
                if got is None and plan is None:
                    return self._queue(now, start, timeout)
            if plan is None:
                return got  # type: ignore[return-value]
            self._carry_out(plan)
            if got is not None:
                return got
            # Expired idle connections were closed and freed their slots: look again
            # (a waiter that queued meanwhile gets a freed slot first).
            now = _monotonic()

    def _usable(self, entry: Entry) -> bool:
        """Check an idle connection before lending it; if dead, close it, free its slot."""
        policy = self._policy
        try:
            if policy.needs_ping(entry, _monotonic(), self._state):
                self._call(policy.lend_check, entry.conn)  # the ping, or the user's check
        except Exception as exc:
            self._check_failed(exc)
            self._close_quietly(entry.conn, "failed_check")
            self._run_core(self._state.checkin, entry, _monotonic(), "failed_check")
            if self._state.short_of_min:
                self._refill_soon()
            return False
        return True

    def get_nowait(self) -> PooledConnection:
        """Check out a connection without waiting for another caller to return one.

        Opens a new connection if the pool is below ``max_size`` (that connect is this
        caller's own work, bounded by ``connect_timeout``); raises ``PoolTimeout`` at once
        if it is full and nothing is idle. ``AsyncConnectionPool.get_nowait()`` does the
        same (awaited, since connecting needs the loop).
        """
        return self.get(timeout=0)

    def _wait(self, waiter: Waiter, start: float, timeout: float | None) -> Entry | ConnectGrant:
        if self._events.wait:
            self._events.emit("wait", self)
        try:
            window = self._config.handoff_after
            if window:
                got = self._wait_passed_over(waiter, start, timeout, window)
                if got is not None:
                    return got
            if timeout is None:
                signalled = waiter.signal.acquire()
            elif self._backend.green:
                if waiter.deadline < self._sweep_at:
                    self._sweep_by(waiter.deadline)
                signalled = waiter.signal.acquire()
            else:
                signalled = waiter.signal.acquire(True, max(0.0, start + timeout - _monotonic()))
        except BaseException:  # KeyboardInterrupt, a green-thread kill: give back, re-raise
            self._give_up(waiter, timed_out=False)
            raise
        if not signalled:
            self._give_up(waiter, timed_out=True)
            with self._lock:
                now = _monotonic()
                error = self._state.timeout_error(now - start, now)
            raise error
        result = waiter.result
        if isinstance(result, BaseException):
            raise result
        assert result is not None  # set by the waker before it released the signal
        return result

    def _wait_passed_over(
        self, waiter: Waiter, start: float, timeout: float | None, window: float
    ) -> Entry | ConnectGrant | None:
        """Wait out the hand-off window, then take an idle connection left meanwhile."""
        first = window if timeout is None else min(window, start + timeout - _monotonic())
        if waiter.signal.acquire(True, max(0.0, first)):
            waiter.signal.release()  # keep it up for the wait that reads the result
            return None
        return self._run_core(self._state.poll_waiter, waiter, _monotonic())

    def _sweep_by(self, deadline: float) -> None:
        """Have the maintenance worker time out waiters at ``deadline`` (green backends)."""
        with self._lock:
            if deadline >= self._sweep_at:
                return
            self._sweep_at = deadline
        self._start_worker(for_waiters=True)
        worker = self._worker
        if worker is not None:
            worker.poke()

    def _maintain(self) -> float | None:
        self._keepalive()
        delay = super()._maintain()
        if not self._backend.green:
            return delay
        now = _monotonic()
        with self._lock:
            expired = self._state.expire_waiters(now)  # each raises its result, a PoolTimeout
            due = self._sweep_at = self._state.next_deadline()
        for waiter in expired:
            waiter.signal.release()
        if due == _INF:
            return delay
        due = max(0.001, due - now)
        return due if delay is None else min(delay, due)

    def _give_up(self, waiter: Waiter, *, timed_out: bool) -> None:
        self._run_core(self._cancel_locked, waiter, timed_out)

    def _cancel_locked(self, waiter: Waiter, timed_out: bool) -> None:
        self._state.cancel_waiter(waiter, _monotonic(), timed_out=timed_out)

    # -- return --------------------------------------------------------------------------

    def put(self, conn: PooledConnection) -> None:
        """Return a connection: reset it and hand it to the next waiter, or keep it idle.

        The cursors taken from it are closed first (a closed connection ends them too).
        It is closed instead if the reset fails, if it is past ``max_age``, if ``max_idle``
        or ``max_age`` is 0, or if the pool is closed. Returning the same proxy twice is
        harmless; a connection from elsewhere is refused with ``ForeignConnection``.
        """
        if type(conn) is not self._proxy_type or conn._pool is not self:
            raise self._foreign(conn)
        entry = conn._entry
        if entry is None:
            return  # returned already
        cursors = conn._cursors
        detach(conn, self._released)
        state = self._state
        if entry.owner is not state and self._inherited(entry):
            return
        now = _monotonic()
        reason = state.retire_reason(entry, now)
        if reason is None:
            raw = entry.conn
            policy = self._policy
            if policy.is_broken is not None and policy.is_broken(raw):
                reason = "broken"
            elif cursors is not None or (policy.reset is not None and policy.needs_reset(raw)):
                reason = self._run_reset(entry, cursors)
        if reason is not None:
            self._close_quietly(entry.conn, reason)
        held = now - entry.checked_out_at
        with self._lock:
            state.checkin(entry, now, reason)
            plan = state.take_plan() if state.plan is not None else None
        if plan is not None:
            self._carry_out(plan)
        if reason is not None and state.short_of_min:
            self._refill_soon()
        if self._events.checkin:
            self._events.emit("checkin", self, entry.conn, held)

    def _run_reset(self, entry: Entry, cursors: Any = None) -> str | None:
        """Close the checkout's cursors, then reset the connection if it needs it.

        Here, outside the lock and before the connection can be lent again: closing a
        cursor may do I/O (MySQL drivers read the rest of its result). Each cursor closes
        in the thread its own ``close()`` picks (an offloaded cursor: an OS thread).
        """
        policy = self._policy
        try:
            if cursors is not None:
                if type(cursors) is Cursors:
                    close_cursors(cursors)
                else:  # the usual one cursor, closed without a frame more
                    cursors.close()
                if policy.reset is None or not policy.needs_reset(entry.conn):
                    return None
            self._call(policy.reset, entry.conn)
        except Exception as exc:
            return self._reset_failed(exc)
        except BaseException:
            # Interrupted mid-reset: the session state is unknown, so close it, free the
            # slot, and let the interruption go on.
            self._close_quietly(entry.conn, "reset_failed")
            self._run_core(self._state.checkin, entry, _monotonic(), "reset_failed")
            raise
        if self._events.reset:
            self._events.emit("reset", self, entry.conn)
        return None

    # -- background work -----------------------------------------------------------------

    def _forked(self) -> None:
        self._worker = None
        self._sweep_at = _INF
        if self._offload is not None:  # the offload threads did not survive the fork
            self._offload = self._choose_offload(True)

    def _abandon(self, entry: Entry) -> None:
        super()._abandon(entry)
        worker = self._worker
        if worker is not None:
            worker.poke()

    # -- the rest of the surface ---------------------------------------------------------

    @contextmanager
    def connection(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> Iterator[PooledConnection]:
        """Lend a connection for a ``with`` block: commit at the end, roll back on an
        exception, and always return it to the pool. ``tag`` names the checkout in
        ``holders()`` and timeout messages."""
        conn = self.get(timeout, tag=tag)
        with conn:
            yield conn

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# A checkout's site is the caller of connection(), not the pool's own frames: get() tells
# connection()'s frame by identity (hashing a code object costs more than the rest of the
# note); the other paths look the wrappers up in WRAPPERS.
skip_in_sites(ConnectionPool.connection, contextlib._GeneratorContextManager.__enter__)
_CONNECTION_CODE = ConnectionPool.connection.__wrapped__.__code__  # type: ignore[attr-defined]
