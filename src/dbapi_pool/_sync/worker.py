"""Background work of a blocking pool: the maintenance worker and the timed connect.

Both run on the pool's backend: daemon threads by default, greenlets under gevent or
eventlet.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .backends import Backend, Sleeper

__all__ = ["ConnectAttempt", "MaintenanceWorker"]

logger = logging.getLogger("dbapi_pool")

#: How long the worker sleeps when no deadline is known (it re-checks min_size then).
IDLE_WAKE = 60.0


class _Maintained(Protocol):
    name: str

    def _maintain(self) -> float | None: ...


class _Control:
    """What the worker shares with its pool: a stop flag and the sleeper to wake it."""

    __slots__ = ("sleeper", "stopped")

    def __init__(self, sleeper: Sleeper) -> None:
        self.sleeper = sleeper
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        self.sleeper.set()


class MaintenanceWorker:
    """Run ``pool._maintain()`` in the background, at the deadlines it returns.

    The worker holds the pool only by weak reference, between runs, so an unreferenced
    pool is collected (and the worker stops); every error is caught and logged.
    """

    def __init__(self, pool: _Maintained, backend: Backend) -> None:
        self._control = control = _Control(backend.new_sleeper())
        # The finalizer holds only the control: a collected pool stops its worker.
        weakref.finalize(pool, control.stop)
        self._handle = backend.spawn(
            self._run, weakref.ref(pool), control, name=f"dbapi-pool maintenance {pool.name}"
        )

    @staticmethod
    def _run(ref: weakref.ref[_Maintained], control: _Control) -> None:
        while not control.stopped:
            pool = ref()
            if pool is None:
                return
            try:
                delay = pool._maintain()
            except Exception:
                logger.exception("pool %r: maintenance failed; retrying in 1 s", pool.name)
                delay = 1.0
            del pool
            control.sleeper.wait(IDLE_WAKE if delay is None else delay)

    def poke(self) -> None:
        """Make the worker run now (after a connection was lost, say)."""
        self._control.sleeper.set()

    def stop(self) -> None:
        """Stop the worker; it exits at its next wake-up, which this triggers."""
        self._control.stop()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker to exit."""
        self._handle.join(timeout)

    @property
    def alive(self) -> bool:
        """Tell whether the worker is still running."""
        return self._handle.is_alive()


class ConnectAttempt:
    """Run one driver ``connect()`` in the background so the caller can stop waiting.

    A connect that outlives its caller's ``connect_timeout`` is reported to ``on_late``
    with its outcome when it ends (the connection, or ``None`` if it failed), so the pool
    can close it and free its slot. ``lock`` (the pool's) decides the race between the
    caller giving up and the connect finishing.
    """

    __slots__ = ("_done", "_lock", "_on_late", "abandoned", "conn", "error", "finished")

    def __init__(
        self,
        connect: Callable[[], Any],
        lock: Any,
        on_late: Callable[[Any], None],
        backend: Backend,
        name: str,
    ) -> None:
        self._lock = lock
        self._on_late = on_late
        self._done = backend.new_signal()
        self.conn: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        backend.spawn(self._run, connect, name=f"dbapi-pool connect {name}")

    def _run(self, connect: Callable[[], Any]) -> None:
        try:
            self.conn = connect()
        except BaseException as exc:
            self.error = exc
        with self._lock:
            self.finished = True
            late = self.abandoned
        if late:
            self._on_late(self.conn)
        else:
            self._done.release()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout``; return True if the connect ended (either way) in time."""
        if self._done.acquire(True, timeout):
            return True
        with self._lock:
            if self.finished:  # finished between the timeout and here: take it after all
                return True
            self.abandoned = True
            return False
