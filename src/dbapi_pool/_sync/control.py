"""Runtime control of a blocking pool: resize, drain, pause, check, wait until ready.

Each operation is one core call (``PoolState`` in ``_core/control.py``) run under the lock
by :meth:`PoolBase._run_core`, whose plan (closes, connects, wake-ups) is carried out after
the lock is released, before the operation returns: a connection it closes is closed
(and, where the driver exposes its socket, gone from the server) when it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .._base import PoolBase
from .._core import Entry
from ..errors import PoolError, PoolTimeout
from .backends import Backend
from .worker import MaintenanceWorker

__all__ = ["PoolControl"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic

#: Longest pause between two looks of a wait for a pool state (wait_ready, close).
_POLL_MAX = 0.05


class PoolControl(PoolBase):
    """Add the runtime operations to a blocking pool (``ConnectionPool`` and subclasses)."""

    _backend: Backend
    _worker: MaintenanceWorker | None

    def _start_worker(self, *, for_waiters: bool = False) -> None:
        """Start the maintenance worker, once, if anything will ever be due (or waiters
        must be timed out: green backends)."""
        config = self._config
        if self._worker is not None or self._state.closed:
            return
        if (
            not for_waiters
            and config.max_idle is None
            and config.max_age is None
            and config.leak_timeout is None
            and config.keepalive is None
            and not config.min_size
        ):
            return  # nothing would ever be due
        with self._lock:
            if self._worker is not None:
                return
            self._worker = MaintenanceWorker(self, self._backend)

    # -- sizes ---------------------------------------------------------------------------

    def _refill_soon(self) -> None:
        """Have the maintenance worker refill to ``min_size`` now (a close freed a slot
        below it): in the background, not in the caller's ``put()`` or ``get()``."""
        worker = self._worker
        if worker is not None:
            worker.poke()

    def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change ``min_size`` and/or ``max_size`` now (``None`` keeps one).

        Shrinking closes idle connections above the new ``max_size`` before returning
        (the longest idle first) and checked-out ones when they come back; growing serves
        waiting callers at once, and a larger ``min_size`` opens the missing connections
        (the first ``max_connecting`` of them before returning, the rest in the
        background). Raises ``ValueError`` for a bad size (below zero, ``min_size`` above
        ``max_size``) and ``PoolClosed`` on a closed pool.
        """
        self._run_core(self._resize_locked, _monotonic(), min_size, max_size)
        self._start_worker()
        logger.info(
            "pool %r: resized (min_size=%d, max_size=%d)",
            self.name,
            self._config.min_size,
            self._config.max_size,
        )

    def _resize_locked(self, now: float, min_size: int | None, max_size: int | None) -> None:
        self._state.resize(now, min_size, max_size)
        self._config = self._state.config

    # -- drain, pause --------------------------------------------------------------------

    def drain(self) -> None:
        """Replace every connection open now; new checkouts get new connections.

        Idle connections are closed before this returns, checked-out ones when they come
        back (a connect running now counts as old too); ``min_size`` is refilled with new
        ones. For after a failover, a credential rotation (``connect_args``), or a change
        of what every session should be. Raises ``PoolClosed`` on a closed pool.
        """
        self._run_core(self._state.drain, _monotonic())
        logger.info("pool %r: drained", self.name)

    def pause(self) -> None:
        """Hold every checkout in line (each bounded by its own timeout); close nothing.

        For a maintenance window: connections in use stay in use, idle ones stay open
        (not even the maintenance worker closes or opens one), and :meth:`resume` serves
        the waiting callers in order. Raises ``PoolError`` if already paused,
        ``PoolClosed`` on a closed pool.
        """
        self._run_core(self._state.pause)
        logger.info("pool %r: paused", self.name)

    def resume(self) -> None:
        """End a pause: idle connections go to the waiting callers first come, first
        served, then room to connect. Raises ``PoolError`` if the pool is not paused."""
        self._run_core(self._state.resume, _monotonic())
        logger.info("pool %r: resumed", self.name)

    @property
    def paused(self) -> bool:
        """Tell whether the pool is paused."""
        return self._state.paused

    # -- checks --------------------------------------------------------------------------

    def check(self) -> int:
        """Check every idle connection now; close the dead ones; return how many.

        Each idle connection gets the driver's ping (a round trip), or where the driver
        has none, the socket probe. The dead ones' slots are refilled up to ``min_size``
        before this returns. Connections in use are not touched; checkouts meanwhile open
        a new connection or wait, as when the idle ones are in use. A paused pool checks
        nothing (returns 0).
        """
        entries = self._run_core(self._state.borrow_idle, _monotonic())
        replaced = self._check_entries(entries)
        if replaced:
            logger.warning(
                "pool %r: check() found %d dead connection(s) of %d; replaced",
                self.name,
                replaced,
                len(entries),
            )
        return replaced

    def _keepalive(self) -> None:
        """Ping the idle connections quiet for ``keepalive`` seconds (maintenance)."""
        quiet = self._config.keepalive
        if quiet is None:
            return
        entries = self._run_core(self._state.borrow_idle, _monotonic(), quiet)
        if entries:
            replaced = self._check_entries(entries)
            if replaced:
                logger.warning(
                    "pool %r: keepalive found %d dead idle connection(s); replaced",
                    self.name,
                    replaced,
                )

    def _check_entries(self, entries: list[Entry]) -> int:
        """Ping connections taken out by ``borrow_idle``; give each back; count the dead."""
        dead = 0
        for entry in entries:
            try:
                self._check_one(entry)
            except Exception as exc:
                dead += 1
                logger.debug("pool %r: a check failed: %s: %s", self.name, type(exc).__name__, exc)
                self._discard_checked(entry)
            except BaseException:  # interrupted mid-ping: the session is unknown, close it
                self._discard_checked(entry)
                for rest in entries[entries.index(entry) + 1 :]:
                    self._run_core(self._state.give_back, rest, _monotonic())
                raise
            else:
                self._run_core(self._state.give_back, entry, _monotonic())
        return dead

    def _check_one(self, entry: Entry) -> None:
        self._call(self._policy.check, entry.conn)

    def _discard_checked(self, entry: Entry) -> None:
        self._close_quietly(entry.conn, "failed_check")
        self._run_core(self._state.give_back, entry, _monotonic(), "failed_check")

    # -- readiness -----------------------------------------------------------------------

    def open(self, wait: bool = False, timeout: float = 30.0) -> None:
        """Make sure the pool is open; with ``wait``, return once it is ready.

        The constructor opens the pool (and starts opening ``min_size`` connections), so
        this only waits, as psycopg_pool's ``open(wait=True)``: see :meth:`wait_ready`.
        A closed pool cannot be opened again (``PoolClosed``).
        """
        if self._state.closed:
            raise self._state.closed_error()
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once ``min_size`` connections are open (idle or in use).

        Raises ``PoolTimeout`` after ``timeout`` seconds, chained to the last connect error
        (``raise ... from``: a wrong password or an unreachable server shows as the
        cause), and ``PoolClosed`` if the pool is closed meanwhile. A paused pool opens
        nothing: this then waits for ``resume()`` or times out.
        """
        state = self._state
        if not self._wait_for(lambda: state.ready or state.closed, timeout):
            with self._lock:
                error = state.health.last_error
                opened = state.size - state.connecting - state.closing
                counts = state.counts()
            raise PoolTimeout(
                f"pool {self.name!r}: {opened} of min_size={self._config.min_size} "
                f"connections open after {timeout:g} s ({counts})"
            ) from error
        if state.closed:
            raise state.closed_error()

    def close(self, timeout: float | None = None) -> None:
        """Close the pool: idle connections now, checked-out ones when returned.

        Waiting callers get ``PoolClosed``; so does every later ``get()``. The idle
        connections are closed when this returns, and where the driver exposes its socket
        the server has ended their sessions (a bounded wait, see ``_closing.py``); a
        connection still checked out is closed by the ``put()`` that returns it, which
        returns once it is closed: :meth:`wait_closed` waits for those. ``timeout``
        bounds the wait for the maintenance worker to stop.
        """
        if self._abandoned:
            self._collect_abandoned()
        already = self._state.closed
        worker = self._run_core(self._close_locked)
        if worker is not None:
            worker.stop()
            worker.join(timeout)
        if not already:
            logger.info("pool %r: closed", self.name)

    def _close_locked(self) -> MaintenanceWorker | None:
        self._state.close()
        worker, self._worker = self._worker, None
        return worker

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until every connection of the closed pool is closed; tell whether they are.

        After ``close()``, connections still checked out are closed as they are returned;
        this returns True once the last one is (at once if none is out), False after
        ``timeout`` seconds. Raises ``PoolError`` on a pool still open.
        """
        state = self._state
        if not state.closed:
            raise PoolError(f"pool {self.name!r}: wait_closed() before close()")
        return self._wait_for(lambda: state.size == 0, timeout)

    def _wait_for(self, condition: Callable[[], Any], timeout: float | None) -> bool:
        """Look at ``condition()`` until it holds or ``timeout`` passes; return it."""
        deadline = None if timeout is None else _monotonic() + timeout
        sleeper, pause = self._backend.new_sleeper(), 0.001
        while not condition():
            left = None if deadline is None else deadline - _monotonic()
            if left is not None and left <= 0:
                return bool(condition())
            sleeper.wait(pause if left is None else min(pause, left))
            pause = min(pause * 2, _POLL_MAX)
        return True
