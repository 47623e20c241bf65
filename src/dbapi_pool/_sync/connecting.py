"""Connecting, for the blocking front-end: a caller's own connect into the slot the core
reserved for it, the pool's own refill connects, and carrying out the core's plans.

Every connect is bounded by ``connect_timeout`` whatever the driver (``ConnectAttempt``);
its outcome is recorded under the lock, then logged and told to the listeners after it.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from .._core import Plan
from ..errors import ConnectTimeout
from ..proxy import PooledConnection
from .backends import Backend
from .control import PoolControl
from .worker import ConnectAttempt

__all__ = ["ConnectingPool"]

_monotonic = time.monotonic


class ConnectingPool(PoolControl):
    """Open connections for callers and for the pool; carry out the core's plans."""

    #: Set by ConnectionPool._setup(): the backend, and what wraps a lent entry.
    _backend: Backend
    _make_proxy: Any

    def _connect(self, start: float, tag: str | None) -> PooledConnection:
        """Open a connection into the slot the core reserved for this caller (who called
        ``get()`` at ``start``)."""
        began = _monotonic()
        try:
            conn = self._open()
        except BaseException as exc:
            if getattr(exc, "pool_deadline", False):
                # Ours: the slot stays taken until the late connect ends (_late_connect).
                # (A ConnectTimeout raised by a connect function, as the eventlet compat
                # layer's, is an ordinary connect failure.)
                raise
            with self._lock:
                failures = self._state.health.failures
                self._state.connect_failed(_monotonic(), exc)
                plan = self._state.take_plan()
            self._connect_done(exc, failures)
            if plan is not None:
                self._carry_out(plan)
            raise
        with self._lock:
            failures = self._state.health.failures
            now = _monotonic()
            entry = self._state.connected(conn, now, started=began)
            if entry is not None:
                self._state.waited(now - start)
            plan = self._state.take_plan()
        self._connect_done(None, failures, conn, now - began)
        if plan is not None:
            self._carry_out(plan)
        if entry is None:
            raise self._state.closed_error()
        if self._state.lent is not None:
            self._record_borrower(entry)
        self._note_holder(entry, tag, 4)  # _connect, _checkout_slowly, get, caller
        self._start_worker()
        if self._events.checkout:
            self._events.emit("checkout", self, conn, now - start)
        return self._make_proxy(self, entry)  # type: ignore[no-any-return]

    def _open(self) -> Any:
        """Call the driver's connect() and the ``configure`` hook, enforcing
        connect_timeout (over both) whatever the driver."""
        timeout = self._config.connect_timeout
        if timeout is None:
            return self._new_connection()
        attempt = ConnectAttempt(
            self._new_connection, self._lock, self._late_connect, self._backend, self.name
        )
        if not attempt.wait(timeout):
            with self._lock:
                self._state.count_connect_timeout()
                counts = self._state.counts()
            timed_out = ConnectTimeout(
                f"pool {self.name!r}: connecting took longer than connect_timeout="
                f"{timeout:g} s ({counts})"
            )
            timed_out.pool_deadline = True  # type: ignore[attr-defined]
            raise timed_out
        error, attempt.error = attempt.error, None  # no attempt <-> traceback cycle
        if error is not None:
            raise error
        return attempt.conn

    def _late_connect(self, conn: Any) -> None:
        """Close a connection that arrived after its caller gave up, and free its slot."""
        if conn is not None:
            self._close_quietly(conn, "late_connect")
        self._run_core(partial(self._state.connect_abandoned, closed=conn is not None))

    def _carry_out(self, plan: Plan) -> None:
        """Do, outside the lock, the I/O the core asked for; repeat while it asks for more."""
        while plan is not None:
            for waiter in plan.wake:
                waiter.signal.release()
            if not plan.close and not plan.connect:
                return  # a hand-over only: nothing was done that could plan more
            if plan.close:  # in one go: closes that must be confirmed wait together
                self._close_many([(e.conn, e.close_reason or "pool_closed") for e in plan.close])
            opened = [self._connect_for_pool() for _ in range(plan.connect)]
            outcomes = []
            with self._lock:
                if plan.close:
                    self._state.entries_closed(plan.close)
                for conn, began in opened:
                    outcomes.append(self._state.health.failures)
                    if isinstance(conn, BaseException):
                        self._state.connect_failed(_monotonic(), conn)
                    else:
                        self._state.add_idle(conn, _monotonic(), started=began)
                plan = self._state.take_plan()  # type: ignore[assignment]
            for (conn, began), failures in zip(opened, outcomes, strict=True):
                if isinstance(conn, BaseException):
                    self._connect_done(conn, failures)
                else:
                    self._connect_done(None, failures, conn, _monotonic() - began)

    def _connect_for_pool(self) -> tuple[Any, float]:
        """Open a connection for the pool itself; return it (or the error) and the time
        the connect began."""
        began = _monotonic()
        try:
            return self._open(), began
        except Exception as exc:  # returned: the core backs off with it, and it is logged
            return exc, began
