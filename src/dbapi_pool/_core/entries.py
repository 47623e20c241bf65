"""The core's small objects: an entry (the pool's slot), a waiter, a plan, a connect grant.

Split from ``state.py`` so that the policy module holds policy only.
"""

from __future__ import annotations

import enum
import itertools
from typing import Any, Final

__all__ = ["CONNECT", "ConnectGrant", "Entry", "EntryState", "Plan", "Waiter"]


class EntryState(str, enum.Enum):
    """Where an entry is in its life; a ``str`` so that ``entry.state == "idle"`` reads."""

    IDLE = "idle"
    IN_USE = "in_use"
    #: Taken off the idle stack by the pool itself for a check or a keepalive ping.
    CHECKING = "checking"
    CLOSING = "closing"
    CLOSED = "closed"
    #: Left the pool's accounting while its holder keeps it (the drop-in's ``put(None)``).
    DETACHED = "detached"

    def __str__(self) -> str:
        return self.value


IDLE: Final = EntryState.IDLE
IN_USE: Final = EntryState.IN_USE
CHECKING: Final = EntryState.CHECKING
CLOSING: Final = EntryState.CLOSING
CLOSED: Final = EntryState.CLOSED
DETACHED: Final = EntryState.DETACHED


class ConnectGrant:
    """The right to open one connection: a slot already reserved for the caller."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CONNECT"


#: Returned by :meth:`PoolState.checkout` (or handed to a waiter): open a connection into
#: the slot reserved for you, then report with ``connected()`` or ``connect_failed()``.
CONNECT: Final = ConnectGrant()

_serials = itertools.count(1)


class Entry:
    """Hold one raw connection and its bookkeeping (the pool's slot)."""

    __slots__ = (
        "__weakref__",
        "borrower",
        "broken",
        "checked_out_at",
        "close_reason",
        "conn",
        "created_at",
        "expires_at",
        "generation",
        "holder",
        "info",
        "last_used_at",
        "lasti",
        "leak_reported",
        "owner",
        "pinged_at",
        "serial",
        "site",
        "state",
        "tag",
    )

    def __init__(self, conn: Any, now: float, expires_at: float) -> None:
        self.conn = conn
        self.serial = next(_serials)
        self.created_at = now
        self.expires_at = expires_at
        self.last_used_at = now
        #: When a keepalive ping last found it alive (``max_idle`` still counts from
        #: ``last_used_at``: a ping is not a use).
        self.pinged_at = now
        self.state = IN_USE
        self.close_reason: str | None = None
        #: The pool's generation when it was opened: ``drain()`` starts a new one, and
        #: entries of an older one are closed instead of reused.
        self.generation = 0
        #: Front-end data (the connection's thread and server session id...).
        self.info: Any = None
        #: Set by the front-end when the connection failed with a "dead" error.
        self.broken = False
        self.checked_out_at = now
        #: Where the current borrower checked it out (only with leak_timeout).
        self.borrower: Any = None
        self.leak_reported = False
        #: Who holds it now (a thread ident, or a task's or greenlet's label), the code
        #: object and instruction offset (cheaper to read than the line) that called
        #: get(), and the caller's tag: set by the front-end at each checkout.
        self.holder: Any = None
        self.site: Any = None
        self.lasti = 0
        self.tag: str | None = None
        #: The PoolState that made it: after a fork, the child's new state disowns the
        #: parent's entries (it must never use or close them).
        self.owner: Any = None

    def __repr__(self) -> str:
        return f"<Entry #{self.serial} {self.state.value}>"


class Waiter:
    """Park one caller; ``result`` is set, under the lock, when something is handed to it.

    ``result`` is ``None`` while waiting, then an :class:`Entry` (a connection handed over),
    :data:`CONNECT` (a slot to open a connection into), or an exception to raise (the pool
    closed). ``signal`` belongs to the front-end (a lock, a future, a green event).
    """

    __slots__ = ("active", "deadline", "queued_at", "result", "signal")

    def __init__(self, deadline: float, signal: Any, queued_at: float = 0.0) -> None:
        self.deadline = deadline
        self.queued_at = queued_at
        self.signal = signal
        self.result: Entry | ConnectGrant | BaseException | None = None
        #: False once withdrawn by :meth:`PoolState.cancel_waiter` (which is idempotent).
        self.active = True


class Plan:
    """List the I/O a front-end must do after releasing the lock.

    ``close``: entries to close, then report with :meth:`PoolState.entries_closed`.
    ``wake``: waiters whose ``result`` was just set.
    ``connect``: slots reserved for the pool itself (refill to ``min_size``); open one
    connection for each and report with :meth:`PoolState.add_idle` or ``connect_failed``.
    """

    __slots__ = ("close", "connect", "wake")

    def __init__(self) -> None:
        self.close: list[Entry] = []
        self.wake: list[Waiter] = []
        self.connect = 0

    def __repr__(self) -> str:
        return f"<Plan close={self.close} wake={len(self.wake)} connect={self.connect}>"
