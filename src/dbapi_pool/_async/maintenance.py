"""The async pool's upkeep of idle connections: the maintenance task, and the pings of
``check()`` and keepalive.

One task per pool, on the pool's loop, expires idle connections, refills ``min_size``,
reports leaks and sends the keepalive pings. It sleeps until the next deadline the core
gives, or until an operation that changes the deadlines (resize, drain, resume, a failed
refill) wakes it; it holds the pool only by weak reference, and logs (never dies of) a
failed round.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from functools import partial
from typing import Any

from .._core import Entry
from ..config import PoolConfig
from .returning import ReturningPool

__all__ = ["IDLE_WAKE", "MaintainedPool"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic

#: How long the maintenance task sleeps when no deadline is known.
IDLE_WAKE = 60.0

#: A ping's outcome: ``None`` (alive), or the replacement connects of a dead connection.
_Pinged = asyncio.Future["list[asyncio.Future[None]] | None"]


def _needs_maintenance(config: PoolConfig) -> bool:
    return (
        config.max_idle is not None
        or config.max_age is not None
        or config.leak_timeout is not None
        or config.keepalive is not None
        or config.min_size > 0
    )


class MaintainedPool(ReturningPool):
    """Keep an async pool's idle connections in shape; see ``AsyncConnectionPool``."""

    def _setup(self) -> None:
        super()._setup()
        self._maintenance: _Task | None = None
        #: Pings of idle connections in flight (``check()``, keepalive).
        self._checks: set[_Pinged] = set()

    def _start_maintenance(self) -> None:
        """Start the maintenance task if the settings give it work (or wake it)."""
        if self._maintenance is not None:
            self._maintenance.wake()
        elif self._loop is not None and _needs_maintenance(self._config):
            self._maintenance = _Task(self, self._loop)

    def _wake_maintenance(self) -> None:
        if self._maintenance is not None:
            self._maintenance.wake()

    async def _stop_maintenance(self) -> None:
        """Stop the maintenance task and wait until it has ended."""
        maintenance, self._maintenance = self._maintenance, None
        if maintenance is not None:
            maintenance.task.cancel()
            await asyncio.gather(maintenance.task, return_exceptions=True)

    def _ping_entries(self, entries: list[Entry]) -> list[_Pinged]:
        """Ping connections taken with ``borrow_idle`` in their threads, without waiting.

        Each future is resolved once its connection is given back: with ``None`` if it
        was alive, else (it was closed) with the futures of its replacement's connect.
        """
        assert self._loop is not None
        futures = []
        for entry in entries:
            fut: _Pinged = self._loop.create_future()
            self._checks.add(fut)
            fut.add_done_callback(self._checks.discard)
            entry.info.thread.call(partial(self._pinged, entry, fut), self._ping_job, entry.conn)
            futures.append(fut)
        return futures

    def _ping_job(self, conn: Any) -> BaseException | None:
        """Check an idle connection in its thread (``DriverPolicy.check``); close it if
        it is dead."""
        try:
            self._policy.check(conn)
        except BaseException as exc:  # dead, whatever it raised: closed, then replaced
            self._close_quietly(conn, "failed_check")
            return exc
        return None

    def _pinged(self, entry: Entry, fut: _Pinged, ok: bool, value: Any) -> None:
        if ok and value is None:
            self._run_core(self._state.give_back, entry, _monotonic())
            if not fut.done():
                fut.set_result(None)
            return
        logger.warning(
            "pool %r: an idle connection failed its check (%s: %s); replacing it",
            self.name,
            type(value).__name__,
            value,
        )
        self._release_thread(entry.info.thread)
        # Spelled out, not _run_core: check() awaits the replacement's connect.
        with self._lock:
            self._state.give_back(entry, _monotonic(), "failed_check")
            plan = self._state.take_plan()
        refills = self._carry_out(plan) if plan is not None else []
        if not fut.done():
            fut.set_result(refills)

    def _keepalive(self) -> None:
        """Ping the idle connections quiet for ``keepalive`` seconds (maintenance)."""
        keepalive = self._config.keepalive
        if keepalive is not None and self._loop is not None:
            self._ping_entries(self._run_core(self._state.borrow_idle, _monotonic(), keepalive))


class _Task:
    """Run one pool's maintenance in a task of its loop; :meth:`wake` runs a round now."""

    __slots__ = ("_wake", "task")

    def __init__(self, pool: MaintainedPool, loop: asyncio.AbstractEventLoop) -> None:
        self._wake = asyncio.Event()
        self.task = loop.create_task(
            _run(weakref.ref(pool), self._wake), name=f"dbapi-pool maintenance {pool.name}"
        )

    def wake(self) -> None:
        self._wake.set()


def _round(pool: MaintainedPool) -> float | None:
    """Run one round; return the seconds to sleep (``None``: no deadline known)."""
    delay = pool._maintain()
    keepalive = pool.config.keepalive
    if keepalive is not None:
        pool._keepalive()
        # A connection returned after this round is due a ping keepalive seconds after
        # its return, a deadline the round could not see: wake at least that often.
        delay = keepalive if delay is None else min(delay, keepalive)
    return delay


async def _run(ref: weakref.ref[MaintainedPool], wake: asyncio.Event) -> None:
    """Run the pool's maintenance at the deadlines it returns, holding it only weakly."""
    loop = asyncio.get_running_loop()
    while True:
        pool = ref()
        if pool is None or pool.closed:
            return
        wake.clear()
        try:
            delay = _round(pool)
        except Exception:
            logger.exception("pool %r: maintenance failed; retrying in 1 s", pool.name)
            delay = 1.0
        del pool
        # A timer that sets the event, not wait_for(): no task per round, and a cancel
        # ends the task at once, as a cancelled sleep would.
        timer = loop.call_later(IDLE_WAKE if delay is None else delay, wake.set)
        try:
            await wake.wait()
        finally:
            timer.cancel()
