"""The threads an AsyncConnectionPool owns: one per connection, started ahead of need.

A dedicated thread per connection is the cheapest hand-off (cheaper than an executor:
figures in benchmarks/README.md), it runs a connection's calls one at a time and in
order, and it keeps a driver's thread affinity (sqlite3) trivially.
The loop's default executor is never used: it has min(32, cpus + 4) = 6 threads on a
2-core machine and would silently cap a larger pool.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["ConnectionInfo", "ConnectionThread", "Inbox", "Outcome"]

logger = logging.getLogger("dbapi_pool")

#: Called on the loop with ``(ok, value)``: the job's result, or the exception it raised.
Outcome = Callable[[bool, Any], None]


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # its awaiting task was cancelled; the outcome was handled elsewhere
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Inbox:
    """Carry the threads' outcomes to the loop, waking it once per batch.

    ``call_soon_threadsafe`` writes to the loop's self-pipe at every call: a system call
    in the thread (which lets the GIL go) and one more in the loop to read it back. Here
    a thread that finds a delivery already scheduled only appends its outcome: while the
    loop is busy (when it matters), one wake-up carries the outcomes of several threads.
    """

    __slots__ = ("_done", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: deque[tuple[Outcome, bool, Any]] = deque()
        #: True from a thread's scheduling of a delivery until that delivery starts.
        self._scheduled = False

    def post(self, outcome: Outcome, ok: bool, value: Any) -> None:
        """Deliver ``outcome(ok, value)`` on the loop (from any thread)."""
        self._done.append((outcome, ok, value))
        # Cleared by the delivery before it drains: a flag seen set means a delivery is
        # still to start, and it will find this outcome. (Two threads both seeing it clear
        # schedule two deliveries; the second finds nothing left: harmless.)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        self._scheduled = False
        done = self._done
        while done:
            outcome, ok, value = done.popleft()
            try:
                outcome(ok, value)
            except Exception as exc:  # as a handle of its own would: reported, not fatal
                self._loop.call_exception_handler(
                    {
                        "message": "dbapi-pool: delivering a thread's outcome failed",
                        "exception": exc,
                    }
                )


class ConnectionThread:
    """Run jobs one after another in one OS thread and report each outcome on the loop.

    Because jobs run in order, a job queued behind a call that its caller abandoned runs
    only once that call has really returned: the pool relies on this to reset or close a
    connection after a cancelled query, never during it.
    """

    __slots__ = ("_inbox", "_jobs", "_loop", "busy", "thread")

    def __init__(self, inbox: Inbox, name: str) -> None:
        self._inbox = inbox
        self._loop = inbox._loop
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Outcome] | None]
        self._jobs = queue.SimpleQueue()
        #: True while a job runs (read by the loop to decide whether a cancel is needed).
        self.busy = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def call(self, outcome: Outcome, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; ``outcome(ok, value)`` is called on the loop when it ends."""
        self._jobs.put((fn, args, outcome))

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` and return a future of the loop for its result."""
        fut = self._loop.create_future()
        self._jobs.put((fn, args, partial(_resolve, fut)))
        return fut

    def stop(self) -> None:
        """Let the thread exit once the jobs already queued are done."""
        self._jobs.put(None)

    def _run(self) -> None:
        get = self._jobs.get
        post = self._inbox.post
        while True:
            job = get()
            if job is None:
                return
            fn, args, outcome = job
            self.busy = True
            try:
                value = fn(*args)
                ok = True
            except BaseException as exc:  # delivered to the awaiting task, not lost here
                value, ok = exc, False
            self.busy = False
            try:
                post(outcome, ok, value)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                logger.debug("dropped the outcome of %r: event loop closed", fn)


class ConnectionInfo:
    """What the async pool keeps per connection (``Entry.info``): its thread, its server
    session id, and, while the pool closes it, a future resolved once it is closed."""

    __slots__ = ("closed", "session_id", "thread")

    def __init__(self, thread: ConnectionThread, session_id: Any) -> None:
        self.thread = thread
        self.session_id = session_id
        self.closed: asyncio.Future[None] | None = None
