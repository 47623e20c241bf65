"""PoolCore: every decision of lending and taking back, and no I/O.

The front-ends (threads, asyncio, green threads) call these methods under their one short
lock and carry out the resulting :class:`Plan` after releasing it. Nothing here blocks,
reads the clock (``now`` is an argument), logs, or calls the driver: the policy is tested
with a scripted clock and no threads. :mod:`.control` adds the runtime operations.

Vocabulary: an *entry* is the pool's slot for one raw connection; a *waiter* is a caller
parked until a connection (or the right to open one) is handed to it; a *slot* is one unit
of ``max_size``, taken by every connection that is connecting, idle, in use or closing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any, Final

from ..errors import PoolClosed, PoolTimeout, TooManyWaiters
from .entries import CLOSED, CLOSING, CONNECT, IDLE, IN_USE, ConnectGrant, Entry, Plan, Waiter
from .fields import CoreFields
from .health import fail_fast_error
from .holders import describe, holders_of
from .timings import BOUNDS

__all__ = ["CONNECT", "PING", "PROBE", "ConnectGrant", "Entry", "Plan", "PoolCore", "Waiter"]

#: Check levels (PoolState.check_level): a socket probe (then a ping if it reads
#: something), or a real ping.
PROBE: Final = 1
PING: Final = 2

_INF = float("inf")


class PoolCore(CoreFields):
    """Lend connections and take them back: the hot path of every front-end."""

    # -- checkout ------------------------------------------------------------------------

    def checkout(self, now: float, *, connect: bool = True) -> Entry | ConnectGrant | None:
        """Take the newest reusable idle entry, or a slot to connect into, or ``None``.

        ``None``: at ``max_size`` with nothing idle (or ``connect`` false, nothing idle),
        so wait (:meth:`add_waiter`) or give up. Expired idle entries go to the plan.
        """
        if self._closed:
            raise self.closed_error()
        if self._paused:
            return None
        idle = self._idle
        max_idle = self._config.max_idle
        if (
            max_idle is not None
            and idle
            and idle[0].last_used_at + max_idle <= now
            and self._size - self._closing > self._config.min_size
        ):
            self._retire(idle.popleft(), "max_idle")
        while idle:
            entry = idle.pop()
            if entry.expires_at <= now:
                self._retire(entry, "max_age")
                continue
            # _lend(), inline: this is the hot path.
            entry.state = IN_USE
            entry.checked_out_at = now
            self._counters["checkouts"] += 1
            if self.lent is not None:
                entry.leak_reported = False
                self.lent.add(entry)
            return entry
        return self._connect_slot(now) if connect else None

    def _connect_slot(self, now: float) -> ConnectGrant | None:
        """Reserve a slot to connect into, if below ``max_size`` and ``max_connecting``."""
        if self._size >= self._config.max_size:
            return None
        if self._health.down and (self._connecting or not self._health.may_attempt(now)):
            # Known unreachable: fail fast instead of starting another connect.
            self._counters["unreachable"] += 1
            raise self.unreachable_error(now)
        if self._connecting < self._config.max_connecting:
            self._size += 1
            self._connecting += 1
            return CONNECT
        return None

    def _lend(self, entry: Entry, now: float) -> None:
        entry.state = IN_USE
        entry.checked_out_at = now
        self._counters["checkouts"] += 1
        if self.lent is not None:
            entry.leak_reported = False
            self.lent.add(entry)

    def add_waiter(self, now: float, timeout: float | None, signal: Any) -> Waiter:
        """Queue a caller that found nothing; refuse it if it may not wait at all."""
        if timeout is not None and timeout <= 0:
            self._counters["timeouts"] += 1
            raise self.timeout_error(0.0, now)
        max_waiting = self._config.max_waiting
        if max_waiting is not None and len(self._waiters) >= max_waiting:
            self._counters["refused"] += 1
            raise TooManyWaiters(
                f"pool {self._config.name!r}: {len(self._waiters)} callers already wait "
                f"(max_waiting={max_waiting}); refusing another ({self.counts()})"
            )
        waiter = Waiter(_INF if timeout is None else now + timeout, signal, now)
        self._waiters.append(waiter)
        self._counters["waits"] += 1
        return waiter

    def cancel_waiter(self, waiter: Waiter, now: float, *, timed_out: bool) -> None:
        """Withdraw a waiter that gave up; give back whatever was already handed to it.

        This is the acknowledged hand-off: a connection (or a connect slot) assigned to a
        waiter that timed out or was cancelled in the meantime goes to the next waiter or
        back to the idle stack, never lost.
        """
        if not waiter.active:
            return
        waiter.active = False
        result = waiter.result
        if result is None:
            self._waiters.remove(waiter)
        elif result is CONNECT:
            self._connecting -= 1
            self._release_slot()
        elif isinstance(result, Entry):
            self._counters["checkouts"] -= 1
            self._unlend(result)
            self._return_entry(result, now)
        if timed_out:
            self._counters["timeouts"] += 1
        waiter.result = None

    def poll_waiter(self, waiter: Waiter, now: float) -> Entry | ConnectGrant | None:
        """Let a waiter that has waited ``handoff_after`` take what it was passed over for.

        Connections returned while it had waited less went to the idle stack (see
        ``handoff_after``); from now on returns come straight to the oldest waiter, but an
        idle connection left meanwhile is taken here. ``None``: nothing yet, wait on.
        """
        if waiter.result is not None or not waiter.active:
            return None  # handed something already: its signal is up
        try:
            got = self.checkout(now)
        except Exception:  # closed, or connects failing: the normal wait reports it
            return None
        if got is None:
            return None
        oldest = self._waiters[0]
        if oldest is not waiter:
            # An elder waiter's own poll is late (its thread not scheduled yet): it is
            # served first, and this one waits on (first come, first served).
            self._waiters.popleft()
            oldest.result = got
            self._plan().wake.append(oldest)
            return None
        waiter.active = False
        self._waiters.popleft()
        return got

    def timeout_error(self, waited: float, now: float) -> PoolTimeout:
        """Build the error for a checkout that waited ``waited`` seconds in vain, naming
        the oldest holders of the pool's connections."""
        return PoolTimeout(
            f"pool {self._config.name!r}: no connection available after {waited:.3f} s "
            f"({self.counts()}){describe(holders_of(self._entries, now, self.task_holders))}"
        )

    def waited(self, seconds: float) -> None:
        """Record the wait of a checkout that did not find an idle connection at once
        (those that did waited 0 s: ``stats()`` counts them from ``checkouts``)."""
        self._wait.record(seconds)

    def unreachable_error(self, now: float) -> BaseException:
        """Build the fail-fast error while connects fail: the driver's own last error.

        A new instance of the driver's class (``except driver.OperationalError`` keeps
        working), chained to the original, with the pool's context in a note.
        """
        return fail_fast_error(self._config.name, self._health, now, self.counts())

    def closed_error(self) -> PoolClosed:
        """Build the error for using a closed pool."""
        return PoolClosed(f"pool {self._config.name!r} is closed ({self.counts()})")

    # -- connecting ----------------------------------------------------------------------

    def connected(
        self, conn: Any, now: float, info: Any = None, started: float | None = None
    ) -> Entry | None:
        """Record a connection opened by a caller into its reserved slot; return its entry.

        ``info`` is the front-end's data for the entry; ``started``, when the connect began
        (its duration goes to the create-time histogram). Returns ``None`` if the pool was
        closed meanwhile: the new connection is then in the plan, to be closed.
        """
        self._connecting -= 1
        self._counters["connects"] += 1
        if started is not None:
            self._create.record(now - started)
        self._health.succeeded()
        entry = Entry(conn, now, self._expiry(now))
        entry.info = info
        entry.owner = self
        self._entries.add(entry)
        entry.generation = self._generation
        if self._stale_connects:
            self._stale_connects -= 1
            entry.generation -= 1
        if self._closed:
            self._retire(entry, "pool_closed")
            return None
        self._lend(entry, now)
        self._grant_connects()
        return entry

    def add_idle(
        self, conn: Any, now: float, info: Any = None, started: float | None = None
    ) -> Entry | None:
        """Record a connection the pool opened for itself (``Plan.connect``)."""
        entry = self.connected(conn, now, info, started)
        if entry is not None:
            self._counters["checkouts"] -= 1
            self._unlend(entry)
            surplus = self._surplus(entry)
            if surplus is not None:
                self._retire(entry, surplus)
            else:
                self._return_entry(entry, now)
                self._refill(now)  # the rest, where max_connecting capped the refill
        return entry

    def connect_failed(self, now: float = 0.0, error: BaseException | None = None) -> None:
        """Free the slot of a connect that raised; back off further connects."""
        self._connecting -= 1
        self._counters["connect_failures"] += 1
        self._health.failed(now, error)
        self._release_slot()

    def count_connect_timeout(self) -> None:
        """Count a caller that stopped waiting for its connect (its slot stays taken until
        the connect ends: :meth:`connect_abandoned`)."""
        self._counters["connect_timeouts"] += 1

    def connect_abandoned(self, *, closed: bool) -> None:
        """Free the slot of a connect that ended after its caller gave up.

        ``closed``: it succeeded, and the front-end closed the late connection.
        """
        self._connecting -= 1
        if closed:
            self._closes["late_connect"] += 1
        self._release_slot()

    def _expiry(self, now: float) -> float:
        max_age = self._config.max_age
        if max_age is None:
            return _INF
        # Shortened, never lengthened, by up to age_jitter, so connections opened together
        # do not all expire together (HikariCP -2.5 %, psycopg_pool -5 %).
        return now + max_age * (1.0 - self._config.age_jitter * self._rng())

    # -- return --------------------------------------------------------------------------

    def retire_reason(self, entry: Entry, now: float) -> str | None:
        """Say why a returned entry must be closed rather than reused, or ``None``.

        Pure: reads only the entry and the settings, so the front-end may call it before
        taking the lock (the entry is still the caller's).
        """
        if self._closed:
            return "pool_closed"
        if self._close_on_return:
            return "close_on_return"
        if entry.generation != self._generation:
            return "drained"
        if self._size - self._closing > self._max_size:
            return "resized"  # decided before the reset: no rollback for a closing one
        if entry.broken:
            return "broken"
        if entry.expires_at <= now:
            return "max_age"
        return None

    def invalidate(self, now: float) -> None:
        """Have every connection opened until now checked before its next checkout."""
        self._invalidated_at = now

    def checkin(self, entry: Entry, now: float, closed_reason: str | None = None) -> None:
        """Take back a checked-out entry.

        ``closed_reason`` given: the front-end has already closed the connection (for that
        reason); its slot is freed, and passed on to the oldest waiter as a connect slot.
        Otherwise the (reset) connection goes to the oldest waiter, or onto the idle stack.
        """
        if entry.owner is not self:  # inherited across a fork: not ours to count
            return
        # The use-time histogram's record(), inline: this is the hot path.
        held = now - entry.checked_out_at
        use = self._use
        use.counts[bisect_left(BOUNDS, held)] += 1
        use.sum += held
        # Forget the holder: the next borrower notes its own after the lock is released,
        # and holders() must not name this one meanwhile (it shows "?" until then).
        entry.holder = entry.site = entry.tag = None
        if self.lent is not None:
            self._unlend(entry)
        if closed_reason is not None:
            entry.state = CLOSED
            self._closes[closed_reason] += 1
            if closed_reason in ("broken", "failed_check"):
                # It died: those opened before it may have died with it (a restart).
                self.invalidate(now)
            self._release_slot()
        elif self._closed:
            self._retire(entry, "pool_closed")
        elif entry.generation != self._generation or self._size - self._closing > self._max_size:
            self._retire(entry, self._surplus(entry) or "resized")
        elif self._waiters and now - self._waiters[0].queued_at >= self._handoff_after:
            self._return_entry(entry, now)
        else:  # the common case, inline: back on the idle stack
            entry.last_used_at = now
            entry.state = IDLE
            self._idle.append(entry)

    def _surplus(self, entry: Entry) -> str | None:
        """Say why a connection coming back must not be kept: ``drained`` (of a generation
        before the last ``drain()``), ``resized`` (above a lowered ``max_size``), or None."""
        if entry.generation != self._generation:
            return "drained"
        if self._size - self._closing > self._max_size:
            return "resized"
        return None

    def _return_entry(self, entry: Entry, now: float) -> None:
        entry.last_used_at = now
        waiters = self._waiters
        if waiters and not self._paused:
            waiter = waiters.popleft()
            self._lend(entry, now)
            waiter.result = entry
            self._plan().wake.append(waiter)
        else:
            entry.state = IDLE
            self._idle.append(entry)

    def _release_slot(self) -> None:
        """Free one slot; the oldest waiter, if any, gets it as the right to connect.

        While the database is unreachable that waiter fails fast instead, with the
        driver's last connect error, rather than start one more doomed connect.
        """
        self._size -= 1
        if not self._waiters or self._closed or self._paused:
            return
        if self._health.down:
            waiter = self._waiters.popleft()
            self._counters["unreachable"] += 1
            waiter.result = self.unreachable_error(self._health.failed_at)
            self._plan().wake.append(waiter)
        else:
            self._grant_connects()

    def _refill(self, now: float) -> None:
        """Plan the connects missing below ``min_size`` (unless connects are failing)."""
        config = self._config
        missing = min(
            config.min_size - (self._size - self._closing),
            config.max_size - self._size,
            config.max_connecting - self._connecting,
        )
        if missing <= 0 or self._paused or self._closed:
            return
        if self._health.down and not self._health.may_attempt(now):
            return
        self._size += missing
        self._connecting += missing
        self._plan().connect += missing

    def _grant_connects(self) -> None:
        """Give the oldest waiters the right to connect, while slots and the connect
        cap allow (a connect that ended makes room for the next)."""
        config = self._config
        while (
            self._waiters
            and self._size < config.max_size
            and self._connecting < config.max_connecting
            and not self._closed
            and not self._paused
        ):
            waiter = self._waiters.popleft()
            waiter.result = CONNECT
            self._size += 1
            self._connecting += 1
            self._plan().wake.append(waiter)

    def _unlend(self, entry: Entry) -> None:
        if self.lent is not None:
            self.lent.discard(entry)
            entry.borrower = None

    # -- closing -------------------------------------------------------------------------

    def _retire(self, entry: Entry, reason: str) -> None:
        entry.state = CLOSING
        entry.close_reason = reason
        self._closing += 1
        self._plan().close.append(entry)

    def entries_closed(self, entries: Iterable[Entry]) -> None:
        """Record that the plan's entries are now closed; their slots go to waiters."""
        for entry in entries:
            entry.state = CLOSED
            self._closing -= 1
            self._closes[entry.close_reason or "pool_closed"] += 1
            self._release_slot()
