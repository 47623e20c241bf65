"""Background work of a threaded pool: the maintenance worker and the timed connect.

Threads, locks and events are looked up on the ``threading`` module at call time (never
``from threading import ...``), so monkey-patching done after ``import dbapi_pool`` applies.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ConnectAttempt", "MaintenanceWorker"]

logger = logging.getLogger("dbapi_pool")

#: How long the worker sleeps when no deadline is known (it re-checks min_size then).
IDLE_WAKE = 60.0


class _Maintained(Protocol):
    name: str

    def _maintain(self) -> float | None: ...


class MaintenanceWorker:
    """Run ``pool._maintain()`` in a daemon thread, at the deadlines it returns.

    The thread holds the pool only by weak reference, between runs, so an unreferenced
    pool is collected (and the worker stops); every error is caught and logged.
    """

    def __init__(self, pool: _Maintained) -> None:
        self._stop = threading.Event()
        self._wake = threading.Event()
        ref = weakref.ref(pool)
        # The finalizer holds only the events: a collected pool stops its worker.
        weakref.finalize(pool, self._stop.set)
        weakref.finalize(pool, self._wake.set)
        self._thread = threading.Thread(
            target=self._run,
            args=(ref, self._stop, self._wake),
            name=f"dbapi-pool maintenance {pool.name}",
            daemon=True,
        )
        self._thread.start()

    @staticmethod
    def _run(ref: weakref.ref[_Maintained], stop: threading.Event, wake: threading.Event) -> None:
        while not stop.is_set():
            pool = ref()
            if pool is None:
                return
            try:
                delay = pool._maintain()
            except Exception:
                logger.exception("pool %r: maintenance failed; retrying in 1 s", pool.name)
                delay = 1.0
            del pool
            wake.wait(IDLE_WAKE if delay is None else delay)
            wake.clear()

    def poke(self) -> None:
        """Make the worker run now (after a connection was lost, say)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the worker; it exits at its next wake-up, which this triggers."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker thread to exit."""
        self._thread.join(timeout)


class ConnectAttempt:
    """Run one driver ``connect()`` in its own thread so the caller can stop waiting.

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
        name: str,
    ) -> None:
        self._lock = lock
        self._on_late = on_late
        self._done = threading.Lock()
        self._done.acquire()
        self.conn: Any = None
        self.error: BaseException | None = None
        self.finished = False
        self.abandoned = False
        thread = threading.Thread(
            target=self._run, args=(connect,), name=f"dbapi-pool connect {name}", daemon=True
        )
        thread.start()

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
