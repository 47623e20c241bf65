"""PoolState: the core with its runtime operations and its maintenance.

:class:`~dbapi_pool._core.state.PoolCore` lends and takes back; this subclass adds what an
operator or the maintenance worker asks of a running pool: resize, drain, pause and resume,
take idle connections out for a check, detach one, and the periodic expiry and refill. Like
the rest of the core it does no I/O: each operation changes state and leaves a plan.
"""

from __future__ import annotations

import bisect
from typing import Any

from ..config import PoolConfig
from ..errors import PoolError
from .entries import CHECKING, CLOSED, DETACHED, IDLE, IN_USE, Entry, Waiter
from .holders import Holder, holders_of
from .state import PING, PROBE, PoolCore
from .stats import Counts, PoolStats

__all__ = ["PoolState"]

_INF = float("inf")


class PoolState(PoolCore):
    """Hold a pool's whole state; see :class:`PoolCore` for lending and taking back."""

    # -- sizes and settings --------------------------------------------------------------

    def reconfigure(self, config: PoolConfig, now: float) -> None:
        """Apply new (validated) settings at once.

        A lower ``max_size`` closes idle connections above it now (the longest idle
        first) and the ones in use as they come back; a higher one serves waiters now; a
        higher ``min_size`` plans the connections it lacks.
        """
        if self._closed:
            raise self.closed_error()
        self._config = config
        self._close_on_return = config.close_on_return
        self._handoff_after = config.handoff_after
        self._max_size = config.max_size
        idle = self._idle
        while idle and self._size - self._closing > config.max_size:
            self._retire(idle.popleft(), "resized")
        self._grant_connects()
        self._refill(now)

    def resize(self, now: float, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change ``min_size`` and/or ``max_size`` (``None`` keeps one); see reconfigure."""
        changes: dict[str, Any] = {}
        if min_size is not None:
            changes["min_size"] = min_size
        if max_size is not None:
            changes["max_size"] = max_size
        if not changes:
            raise ValueError(f"pool {self._config.name!r}: resize() needs min_size or max_size")
        self.reconfigure(self._config.replace(**changes), now)

    # -- drain, pause --------------------------------------------------------------------

    def drain(self, now: float) -> None:
        """Replace every connection open now: idle ones at once, in-use ones on return.

        Connects already running count as old too (they may use the old credentials or
        reach the old server); new checkouts get new connections.
        """
        if self._closed:
            raise self.closed_error()
        self._generation += 1
        self._stale_connects = self._connecting
        while self._idle:
            self._retire(self._idle.popleft(), "drained")
        self._refill(now)

    def clear_idle(self) -> None:
        """Close every idle connection (those in use are not touched)."""
        while self._idle:
            self._retire(self._idle.popleft(), "cleared")

    def pause(self) -> None:
        """Hold every checkout in line (bounded by its timeout); close and open nothing."""
        if self._closed:
            raise self.closed_error()
        if self._paused:
            raise PoolError(f"pool {self._config.name!r} is already paused")
        self._paused = True

    def resume(self, now: float) -> None:
        """End a pause: idle connections go to the waiters in order, then new slots."""
        if not self._paused:
            raise PoolError(f"pool {self._config.name!r} is not paused")
        self._paused = False
        if self._closed:
            return
        while self._idle and self._waiters:
            self._return_entry(self._idle.pop(), now)
        self._grant_connects()
        self._refill(now)

    # -- checks and detaching ------------------------------------------------------------

    def check_level(self, entry: Entry, now: float, can_probe: bool) -> int:
        """Say how an idle entry must be checked before it is lent: ``PING`` (a round
        trip), ``PROBE`` (a round trip if its socket has something to read), or ``0``.

        ``can_probe``: the driver exposes the socket, whose probe is cheap enough for
        every checkout. Without one, a connection used within ``check_idle_after`` is
        trusted (HikariCP's bypass window), as a ping each time would double the round
        trips. ``check_idle_after=None`` trusts every connection; ``pre_ping`` and
        connections opened before a failure (invalidated) always get a ping.
        """
        config = self._config
        if config.pre_ping or entry.created_at <= self._invalidated_at:
            return PING
        threshold = config.check_idle_after
        if threshold is None:
            return 0
        if can_probe:
            return PROBE
        return PING if now - entry.last_used_at >= threshold else 0

    def borrow_idle(self, now: float, quiet_for: float | None = None) -> list[Entry]:
        """Take idle connections out for the pool's own check (``check()``, keepalive).

        ``quiet_for``: only those neither used nor pinged for that long. They count as in
        use until :meth:`give_back`; no checkout is counted.
        """
        if self._closed or self._paused:
            return []
        if quiet_for is None:
            taken = list(self._idle)
        else:
            taken = [e for e in self._idle if max(e.last_used_at, e.pinged_at) + quiet_for <= now]
        if len(taken) == len(self._idle):
            self._idle.clear()
        else:
            for entry in taken:
                self._idle.remove(entry)
        for entry in taken:
            entry.state = CHECKING
        return taken

    def give_back(self, entry: Entry, now: float, closed_reason: str | None = None) -> None:
        """Take back a connection from :meth:`borrow_idle`.

        ``closed_reason``: the front-end found it dead and closed it; its slot is freed and
        refilled up to ``min_size``. Otherwise it goes to the oldest waiter, or back into
        the idle stack at its place (ordered by last use, so ``max_idle`` still counts
        from its last real use).
        """
        if closed_reason is not None:
            entry.state = CLOSED
            self._closes[closed_reason] += 1
            self.invalidate(now)  # its siblings may have died with it
            self._release_slot()
            self._refill(now)
            return
        entry.pinged_at = now
        reason = "pool_closed" if self._closed else self._surplus(entry)
        if reason is not None:
            self._retire(entry, reason)
        elif self._waiters and not self._paused:
            last_used = entry.last_used_at
            self._return_entry(entry, now)
            entry.last_used_at = last_used
        else:
            entry.state = IDLE
            keys = [e.last_used_at for e in self._idle]
            self._idle.insert(bisect.bisect_right(keys, entry.last_used_at), entry)

    def detach(self, entry: Entry) -> bool:
        """Drop a checked-out connection from the pool's accounting; its holder keeps it.

        Its slot is freed now (and passed on to a waiter); the front-end closes the
        connection if it ever comes back. Returns False if it was not in use here.
        """
        if entry.state != IN_USE or entry.owner is not self:
            return False
        self._unlend(entry)
        entry.state = DETACHED
        self._release_slot()
        return True

    def abandon(self, entry: Entry) -> None:
        """Retire a checked-out entry whose caller lost it (garbage-collected proxy)."""
        if entry.state == IN_USE and entry.owner is self:
            self._unlend(entry)
            self._retire(entry, "abandoned")

    def close(self) -> None:
        """Close the pool: idle entries go to the plan, waiters are woken with PoolClosed."""
        if self._closed:
            return
        self._closed = True
        while self._idle:
            self._retire(self._idle.popleft(), "pool_closed")
        if self._waiters:
            error = self.closed_error()
            plan = self._plan()
            while self._waiters:
                waiter = self._waiters.popleft()
                waiter.result = error
                plan.wake.append(waiter)

    @property
    def ready(self) -> bool:
        """Tell whether ``min_size`` connections are open (idle or in use)."""
        return self._size - self._connecting - self._closing >= self._config.min_size

    # -- observation ------------------------------------------------------------------

    def snapshot(self) -> PoolStats:
        """Return a frozen copy of the sizes and counters."""

        return PoolStats(
            name=self._config.name,
            max_size=self._config.max_size,
            min_size=self._config.min_size,
            size=self._size,
            idle=len(self._idle),
            in_use=self.in_use,
            connecting=self._connecting,
            waiting=len(self._waiters),
            closes=Counts(self._closes),
            wait_time=self._wait.snapshot(self._counters["checkouts"] - sum(self._wait.counts)),
            use_time=self._use.snapshot(),
            create_time=self._create.snapshot(),
            **self._counters,
        )

    def holders(self, now: float) -> list[Holder]:
        """Describe the connections in use, the longest held first."""
        return holders_of(self._entries, now, self.task_holders)

    def expire_waiters(self, now: float) -> list[Waiter]:
        """Withdraw every waiter whose deadline has passed and return them, each with its
        ``PoolTimeout`` as ``result`` (for front-ends whose waiters do not time themselves
        out: one timer for all, armed for :meth:`next_deadline`)."""
        expired = [w for w in self._waiters if w.result is None and w.deadline <= now]
        for waiter in expired:
            self.cancel_waiter(waiter, now, timed_out=True)
            waiter.result = self.timeout_error(now - waiter.queued_at, now)
        return expired

    def next_deadline(self) -> float:
        """Return the earliest deadline among the waiters (infinity if none has one)."""
        return min((w.deadline for w in self._waiters), default=_INF)

    # -- maintenance ---------------------------------------------------------------------

    def maintain(self, now: float) -> float | None:
        """Expire idle connections, plan the refill to ``min_size``; return the next deadline.

        Closes idle entries past ``max_idle`` (oldest first, never going below ``min_size``)
        and past their ``max_age``; reserves slots for the connections missing below
        ``min_size`` (``Plan.connect``). The return value is the monotonic time at which
        calling again may find work, or ``None`` when only a later return could create any.
        """
        if self._closed or self._paused:
            return None  # resume() plans the refill; a pause closes nothing
        config = self._config
        idle = self._idle
        max_idle = config.max_idle
        if max_idle is not None:
            while (
                idle
                and idle[0].last_used_at + max_idle <= now
                and self._size - self._closing > config.min_size
            ):
                self._retire(idle.popleft(), "max_idle")
        if config.max_age is not None:
            for entry in [e for e in idle if e.expires_at <= now]:
                idle.remove(entry)
                self._retire(entry, "max_age")
        self._refill(now)
        return self._next_deadline(now)

    def leaks(self, now: float) -> list[Entry]:
        """Return the checkouts held longer than ``leak_timeout``, each reported once."""
        limit = self._config.leak_timeout
        if self.lent is None or limit is None:
            return []
        found = [e for e in self.lent if not e.leak_reported and now - e.checked_out_at >= limit]
        for entry in found:
            entry.leak_reported = True
        self._counters["leaks"] += len(found)
        return found

    def _next_deadline(self, now: float) -> float | None:
        deadlines = [e.expires_at for e in self._idle]
        limit = self._config.leak_timeout
        if self.lent and limit is not None:
            deadlines += [e.checked_out_at + limit for e in self.lent if not e.leak_reported]
        if self._health.down and self._config.min_size:
            deadlines.append(self._health.retry_at)  # the refill's next attempt
        keepalive = self._config.keepalive
        if keepalive is not None:
            deadlines += [max(e.last_used_at, e.pinged_at) + keepalive for e in self._idle]
            if self.in_use:  # one returned later is due later than now + keepalive
                deadlines.append(now + keepalive)
        max_idle = self._config.max_idle
        if max_idle is not None:
            # An entry returned later than now expires later than now + max_idle, so this
            # bound also covers connections that are not idle yet.
            first_idle = self._idle[0].last_used_at + max_idle if self._idle else now
            # The oldest may be kept past its time to honour min_size: look again later.
            deadlines.append(first_idle if first_idle > now else now + max_idle)
        deadline = min(deadlines, default=_INF)
        return None if deadline == _INF else deadline
