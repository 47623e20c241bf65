"""CoreFields: the pool core's state, and the read-only view the front-ends get of it.

The fields are private: a front-end reads them through the properties below and changes
them only through the core's operations (:class:`~.state.PoolCore`, :class:`~.control.PoolState`).
Two attributes stay public by design, both read on the hot path: ``plan`` (the pending plan:
a front-end checks it before calling :meth:`take_plan`) and ``lent`` (``None`` unless
``leak_timeout`` is set); and ``task_holders``, which a front-end sets once (its holders
are asyncio task names).
"""

from __future__ import annotations

import random
import weakref
from collections import deque
from collections.abc import Callable

from ..config import PoolConfig
from .entries import Entry, Plan, Waiter
from .health import ConnectHealth
from .stats import CLOSE_REASONS
from .timings import Histogram

__all__ = ["COUNTERS", "CoreFields"]

_INF = float("inf")

#: The counters of ``stats()`` besides ``closes`` (fields of PoolStats).
COUNTERS = (
    "checkouts",
    "waits",
    "timeouts",
    "refused",
    "connects",
    "connect_failures",
    "connect_timeouts",
    "unreachable",
    "leaks",
)


class CoreFields:
    """Hold a pool's entries, idle stack, waiter queue, sizes and counters.

    Not thread-safe by itself: the front-end serialises calls with one lock. Methods that
    create work for the front-end add it to ``self.plan``; take it with :meth:`take_plan`
    before releasing the lock and carry it out afterwards.
    """

    def __init__(self, config: PoolConfig, *, rng: Callable[[], float] = random.random):
        self._config = config
        self._rng = rng
        #: Idle entries; the right end is the most recently returned (LIFO reuse), so the
        #: left end is the one idle the longest.
        self._idle: deque[Entry] = deque()
        #: Waiting callers, oldest first (FIFO, direct hand-off).
        self._waiters: deque[Waiter] = deque()
        self._size = 0
        self._connecting = 0
        self._closing = 0
        self._closed = False
        #: Checkouts wait, and nothing is connected or handed over (``pause()``).
        self._paused = False
        #: Bumped by ``drain()``: entries of an older generation are closed, not reused.
        self._generation = 0
        #: Connects already running at the last ``drain()``: as many of the next ones to
        #: finish are taken for them and belong to the old generation (the safe side).
        self._stale_connects = 0
        self._close_on_return = config.close_on_return
        self._handoff_after = config.handoff_after
        self._max_size = config.max_size
        self.plan: Plan | None = None
        self._health = ConnectHealth(config.reconnect_min, config.reconnect_max, rng)
        #: Connections created at or before this time are pinged before their next
        #: checkout (set when a connection died: its siblings may be dead too).
        self._invalidated_at = -_INF
        #: The entries callers hold, tracked only to report leaks (``leak_timeout``).
        self.lent: set[Entry] | None = set() if config.leak_timeout is not None else None
        self._counters = dict.fromkeys(COUNTERS, 0)
        self._closes = dict.fromkeys(CLOSE_REASONS, 0)
        #: Every entry opened and not yet collected (the holders are those in use).
        self._entries: weakref.WeakSet[Entry] = weakref.WeakSet()
        #: Seconds a checkout waited (only the slow ones: the rest waited 0), a connection
        #: was held, a connect took.
        #: The holders noted are asyncio task names (else thread idents, or labels).
        self.task_holders = False
        self._wait = Histogram()
        self._use = Histogram()
        self._create = Histogram()

    # -- observation (read-only: the front-ends change the core only through its methods) --

    @property
    def config(self) -> PoolConfig:
        """Return the settings in force (``reconfigure()`` replaces them)."""
        return self._config

    @property
    def idle(self) -> tuple[Entry, ...]:
        """Return the idle entries, the one idle the longest first."""
        return tuple(self._idle)

    @property
    def waiters(self) -> tuple[Waiter, ...]:
        """Return the waiting callers, oldest first."""
        return tuple(self._waiters)

    @property
    def size(self) -> int:
        """Count the slots taken: connections connecting, idle, in use or closing."""
        return self._size

    @property
    def connecting(self) -> int:
        """Count the connects running."""
        return self._connecting

    @property
    def closing(self) -> int:
        """Count the closes planned and not reported yet."""
        return self._closing

    @property
    def closed(self) -> bool:
        """Tell whether the pool was closed."""
        return self._closed

    @property
    def paused(self) -> bool:
        """Tell whether checkouts are held (``pause()``)."""
        return self._paused

    @property
    def health(self) -> ConnectHealth:
        """Return the connect health: failures in a row, last error, next attempt."""
        return self._health

    @property
    def generation(self) -> int:
        """Return the generation that new connections join (``drain()`` bumps it)."""
        return self._generation

    @property
    def in_use(self) -> int:
        """Return how many connections callers hold."""
        return self._size - len(self._idle) - self._connecting - self._closing

    @property
    def short_of_min(self) -> bool:
        """Tell whether a refill to ``min_size`` is due now (a slot was freed below it, and
        connects are not failing): the front-end wakes its maintenance worker."""
        return self._size - self._closing < self._config.min_size and not (
            self._closed or self._paused or self._health.down
        )

    def counts(self) -> str:
        """Return the counts as a message fragment: ``idle=1 in_use=3 waiting=2 max=4``."""
        return (
            f"idle={len(self._idle)} in_use={self.in_use} waiting={len(self._waiters)} "
            f"max={self._config.max_size}"
        )

    def take_plan(self) -> Plan | None:
        """Return the pending plan (or ``None``) and start a new one."""
        plan, self.plan = self.plan, None
        return plan

    def _plan(self) -> Plan:
        plan = self.plan
        if plan is None:
            plan = self.plan = Plan()
        return plan
