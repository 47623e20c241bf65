"""Taking connections back, for the asyncio front-end: each returned connection's reset
(or close) runs in its own thread, then it is checked in on the loop; a caller cancelled
mid-call has its call cancelled on the server first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from .._core import Entry
from .._drivers import rollback
from .offload import OffloadingPool, resolve_with_none
from .threads import ConnectionInfo

__all__ = ["ReturningPool"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic


class ReturningPool(OffloadingPool):
    """Reset or close returned connections in their threads; check them in on the loop."""

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
        policy = self._policy
        if reason is None:
            reason = self._state.retire_reason(entry, _monotonic()) or policy.broken(entry.conn)
        if cursors is not None and not cancelled and reason is None:
            cursors = self._close_local_cursors(cursors)
        if reason is not None:
            job: tuple[Any, ...] = (self._close_job, entry.conn, reason)
        elif cancelled:
            # The transaction may be aborted by the cancel: always roll back first.
            job = (self._reset_job, entry.conn, policy.reset or rollback, cursors)
        elif policy.needs_reset(entry.conn):
            job = (self._reset_job, entry.conn, policy.reset, cursors)
        elif cursors is not None:
            job = (self._reset_job, entry.conn, None, cursors)
        else:
            self._returned(entry, None, True, None)
            return None
        done = self._loop.create_future() if wait and self._loop is not None else None
        resets = job[0] == self._reset_job and job[2] is not None
        entry.info.thread.call(partial(self._returned, entry, done, resets=resets), *job)
        return done

    def _close_local_cursors(self, cursors: list[Any]) -> list[Any] | None:
        """Close here, on the loop, the cursors whose close does no I/O (a psycopg
        client-side cursor): no thread hop just for them. Return the others (``None``).

        The connection's thread is idle: the borrower's calls have all returned.
        """
        local = self.profile.local_close
        if local is None:
            return cursors
        rest = []
        for cursor in cursors:
            try:
                if local(cursor):
                    cursor.close()
                    continue
            except Exception:  # the job in the thread tries again; its failure closes
                pass
            rest.append(cursor)
        return rest or None

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
        self,
        entry: Entry,
        done: asyncio.Future[None] | None,
        ok: bool,
        reason: Any,
        *,
        resets: bool = False,
    ) -> None:
        """Check in a returned connection, on the loop, once its reset (``resets``) or
        close (``reason``) ran in its thread."""
        if not ok:  # the reset itself died (not an Exception): close and drop it
            entry.info.thread.call(
                partial(self._returned, entry, done), self._close_job, entry.conn, "reset_failed"
            )
            return
        if reason is not None:
            self._release_thread(entry.info.thread)
        events = self._events
        if events:
            self._emit_return(entry, reason, resets)
        # The hot path of put(): the sequence spelled out, no plan taken when none is made.
        with self._lock:
            self._state.checkin(entry, _monotonic(), reason)
            plan = self._state.take_plan() if self._state.plan is not None else None
        if reason is not None:
            self._refill_after_close()
        if plan is not None:
            self._carry_out(plan)
            closed = entry.info.closed
            if done is not None and closed is not None and entry in plan.close:
                # Retired as it came back (above a lowered max_size): put() returns
                # once it is closed, like every close an operation causes.
                closed.add_done_callback(partial(resolve_with_none, done))
                return
        if done is not None and not done.done():
            done.set_result(None)

    def _emit_return(self, entry: Entry, reason: str | None, resets: bool) -> None:
        """Tell the listeners of a return: reset or close, then the check-in."""
        events = self._events
        if reason is not None:
            self._emit_closes([(entry.conn, reason)])
        elif resets and events.reset:
            events.emit("reset", self, entry.conn)
        if events.checkin:
            events.emit("checkin", self, entry.conn, _monotonic() - entry.checked_out_at)

    def _cancelled_mid_call(self, entry: Entry, cursors: list[Any] | None) -> None:
        """Take back a connection whose caller was cancelled while its call ran.

        The call goes on in the connection's thread; the server is asked to stop it, and
        the reset queued behind it (closing ``cursors``, the checkout's driver cursors
        still open, first) runs only once it has returned: the connection is never
        reused mid-call (a stall with psycopg2, a corrupted protocol with PyMySQL:
        research/concurrency.md).
        """
        info: ConnectionInfo = entry.info
        cancel = self.profile.cancel
        if info.thread.busy and self._service is not None:
            if cancel is None:
                # Nothing can stop it: let it finish, then close rather than reuse.
                info.thread.call(
                    partial(self._returned, entry, None), self._close_job, entry.conn, "cancelled"
                )
                return
            # A coroutine connect_args cannot run in the service thread: its last result.
            latest = self._latest_args
            connect = (
                self._connect_driver if latest is None else partial(self._connect_with, latest)
            )
            self._service.call(self._cancel_outcome, cancel, connect, entry.conn, info.session_id)
        self._return(entry, cancelled=True, cursors=cursors)

    def _cancel_outcome(self, ok: bool, value: Any) -> None:
        if not ok:
            logger.warning(
                "pool %r: could not cancel a call on the server (%s: %s)",
                self.name,
                type(value).__name__,
                value,
            )
