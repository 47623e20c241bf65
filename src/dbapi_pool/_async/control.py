"""Opening and runtime control for the asyncio front-end: ``open()``, ``wait_ready()``,
``resize()``, ``drain()``, ``pause()``/``resume()`` and ``check()`` (the same operations
as the blocking pool's, in :mod:`dbapi_pool._sync.control`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from ..errors import PoolTimeout, WrongEventLoop
from .maintenance import MaintainedPool

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic


class AsyncControl(MaintainedPool):
    """Open an asyncio pool on its loop and change it at run time."""

    # -- opening -------------------------------------------------------------------------

    async def open(self, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Bind the pool to the running loop, start its threads, open ``min_size``.

        Returns once the first attempts to open ``min_size`` connections have ended
        (some may have failed: the pool retries them in the background). With ``wait``,
        returns only when ``min_size`` connections are open, or raises ``PoolTimeout``
        after ``timeout`` seconds: see :meth:`wait_ready`.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
            with self._lock:
                self._state.maintain(_monotonic())
                plan = self._state.take_plan()
            if plan is not None:
                # Spelled out, not _run_core: the refill's futures are awaited here.
                await asyncio.gather(*self._carry_out(plan))
        if wait:
            await self.wait_ready(timeout)

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not None:
            raise WrongEventLoop(
                f"pool {self.name!r} belongs to another event loop; create one pool per loop"
            )
        if self._state.closed:
            raise self._state.closed_error()
        self._loop = loop
        self._start_threads(loop)
        self._start_maintenance()
        logger.info("pool %r: opened (max_size=%d)", self.name, self._config.max_size)

    def _bound_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._bind(loop)
        return loop

    async def _ensure_open(self) -> None:
        if self._loop is None or self._loop is not asyncio.get_running_loop():
            await self.open()

    # -- runtime control -----------------------------------------------------------------

    async def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change ``min_size`` and/or ``max_size`` at once (``None`` keeps the current one).

        Growing serves waiting tasks at once and starts opening the connections a higher
        ``min_size`` asks for (:meth:`wait_ready` waits for them). Shrinking closes idle
        connections above the new ``max_size`` (the longest idle first) and returns once
        they are closed; connections in use above it close when they come back (their
        ``put()`` returns after the close). Bad sizes raise ``ValueError`` and change
        nothing.
        """
        await self._ensure_open()
        now = _monotonic()
        state = self._state
        closing = self._run_core(self._closes_planned_by, state.resize, now, min_size, max_size)
        self._config = state.config
        self._fit_threads()
        self._start_maintenance()
        self._notify_ready()
        logger.info(
            "pool %r: resized (min_size=%d, max_size=%d)",
            self.name,
            self._config.min_size,
            self._config.max_size,
        )
        await self._closes_done(closing)

    async def drain(self) -> None:
        """Replace every connection open now: idle ones at once, those in use on return.

        Returns once the idle ones are closed; a connection in use is closed when it comes
        back (its ``put()`` returns after the close), and a connect running now is closed
        when it ends, so that every ``get()`` after this one gets a connection opened after
        it. For a failover, or new credentials from a ``connect_args`` callable (a
        ``rotate()``: store the new secret, then ``await pool.drain()``). ``min_size`` is
        refilled in the background. Raises ``PoolClosed`` on a closed pool.
        """
        await self._ensure_open()
        closing = self._run_core(self._closes_planned_by, self._state.drain, _monotonic())
        self._start_maintenance()
        logger.info("pool %r: drained (%d idle connections closed)", self.name, len(closing))
        await self._closes_done(closing)

    def pause(self) -> None:
        """Hold every checkout in line (each up to its timeout); open and close nothing.

        For a maintenance window (HikariCP's suspend). A plain method, as is
        :meth:`resume`: neither waits for anything (a coroutine in this API means "this
        waits"), and both can be called from synchronous code, such as a signal handler
        added with ``loop.add_signal_handler``. Pausing twice raises ``PoolError``.
        """
        self._run_core(self._state.pause)
        logger.info("pool %r: paused", self.name)

    def resume(self) -> None:
        """End a pause: idle connections go to the waiting tasks in order, then free slots.

        Call it on the pool's loop (``loop.call_soon_threadsafe(pool.resume)`` from another
        thread): it wakes tasks. Raises ``PoolError`` if the pool is not paused.
        """
        self._bound_loop()
        self._run_core(self._state.resume, _monotonic())
        self._start_maintenance()
        logger.info("pool %r: resumed", self.name)

    async def check(self) -> int:
        """Check every idle connection now, each in its thread; return how many were dead.

        Each idle connection gets the driver's ping (without one, the socket probe; for
        sqlite3, only the driver's own "closed" flag); a dead one is closed and replaced
        up to ``min_size``. Returns once every idle connection was checked, the dead ones
        are closed and their replacements' connects have ended. Connections in use are
        not touched; one being checked is not lent meanwhile. Raises ``PoolClosed`` on a
        closed pool; a paused pool's connections are not checked.
        """
        await self._ensure_open()
        if self._state.closed:
            raise self._state.closed_error()
        entries = self._run_core(self._state.borrow_idle, _monotonic())
        pings = self._ping_entries(entries)
        if not pings:
            return 0
        # Shielded: a caller that gives up leaves the checks to end (and give back).
        outcomes = await asyncio.shield(asyncio.gather(*pings))
        dead = [refills for refills in outcomes if refills is not None]
        replacements = [fut for refills in dead for fut in refills]
        if replacements:
            await asyncio.shield(asyncio.gather(*replacements))
        return len(dead)

    @property
    def paused(self) -> bool:
        """Tell whether the pool is paused."""
        return self._state.paused

    async def wait_ready(self, timeout: float | None = 30.0) -> None:
        """Wait until ``min_size`` connections are open (idle or in use).

        After ``timeout`` seconds (``None``: no limit), raises ``PoolTimeout`` chained to
        the last connect error; the pool stays open and goes on trying (close it if you
        give up). Raises ``PoolClosed`` if the pool is closed meanwhile.
        """
        if timeout is not None and (not isinstance(timeout, (int, float)) or not timeout >= 0):
            raise ValueError(f"pool {self.name!r}: timeout must be >= 0 or None, got {timeout!r}")
        if timeout is not None and math.isinf(timeout):
            timeout = None
        await self._ensure_open()
        with self._lock:
            ready, closed = self._state.ready, self._state.closed
        if closed:
            raise self._state.closed_error()
        if ready:
            return
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._ready_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise self._not_ready_error(timeout) from self._last_connect_error
        finally:
            if fut in self._ready_waiters:
                self._ready_waiters.remove(fut)

    def _not_ready_error(self, timeout: float | None) -> PoolTimeout:
        with self._lock:
            state = self._state
            opened = state.size - state.connecting - state.closing
            counts = state.counts()
        return PoolTimeout(
            f"pool {self.name!r}: {opened} of min_size={self._config.min_size} connections "
            f"open after {timeout:g} s ({counts})"
        )
