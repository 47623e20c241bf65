"""Deterministic tests of the sans-I/O core: scripted clock, no threads, no sleeps."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dbapi_pool._core import CONNECT, Entry, PoolState, Waiter
from dbapi_pool.config import PoolConfig
from dbapi_pool.errors import PoolClosed, PoolTimeout, TooManyWaiters


def make_state(rng: float = 0.0, **settings: Any) -> PoolState:
    """Build a core with the given settings and a constant 'random' jitter draw."""
    return PoolState(PoolConfig.build("core", **settings), rng=lambda: rng)


def open_entry(state: PoolState, now: float = 0.0, conn: Any = None) -> Entry:
    """Check out a brand-new connection: reserve a slot and report it connected."""
    assert state.checkout(now) is CONNECT
    entry = state.connected(conn if conn is not None else object(), now)
    assert entry is not None
    return entry


def waiter(state: PoolState, now: float = 0.0, timeout: float | None = 10.0) -> Waiter:
    assert state.checkout(now) is None
    return state.add_waiter(now, timeout, signal=None)


def plan_wakes(state: PoolState) -> list[Waiter]:
    plan = state.take_plan()
    return [] if plan is None else plan.wake


def plan_closes(state: PoolState) -> list[Entry]:
    plan = state.take_plan()
    return [] if plan is None else plan.close


# -- sizing ------------------------------------------------------------------------------


def test_checkout_of_an_empty_pool_reserves_a_slot_to_connect() -> None:
    state = make_state(max_size=2)
    assert state.checkout(0.0) is CONNECT
    assert (state.size, state.connecting, state.in_use) == (1, 1, 0)


def test_connected_entry_is_in_use_and_counted() -> None:
    state = make_state()
    entry = open_entry(state)
    stats = state.snapshot()
    assert entry.state == "in_use"
    assert (stats.size, stats.in_use, stats.connects, stats.checkouts) == (1, 1, 1, 1)


def test_never_more_than_max_size_open_or_connecting() -> None:
    state = make_state(max_size=3)
    open_entry(state)
    assert state.checkout(0.0) is CONNECT
    assert state.checkout(0.0) is CONNECT
    assert state.checkout(0.0) is None
    assert state.size == 3


def test_failed_connect_frees_its_slot() -> None:
    state = make_state(max_size=1)
    assert state.checkout(0.0) is CONNECT
    state.connect_failed()
    assert (state.size, state.connecting) == (0, 0)
    assert state.snapshot().connect_failures == 1
    assert state.checkout(0.0) is CONNECT


def test_failed_connect_fails_the_oldest_waiter_fast_with_the_drivers_error() -> None:
    state = make_state(max_size=1)
    assert state.checkout(0.0) is CONNECT
    first, second = waiter(state), waiter(state)
    state.connect_failed(1.0, ConnectionRefusedError("refused"))
    assert plan_wakes(state) == [first]
    assert isinstance(first.result, ConnectionRefusedError)
    assert first.result.__cause__ is not None
    assert second.result is None
    assert (state.size, state.connecting) == (0, 0)


# -- reuse order and hand-off ------------------------------------------------------------


def test_idle_connections_are_reused_newest_first() -> None:
    state = make_state(max_size=2)
    older, newer = open_entry(state), open_entry(state)
    state.checkin(older, 1.0)
    state.checkin(newer, 2.0)
    assert state.checkout(3.0) is newer
    assert state.checkout(3.0) is older


def test_returned_connection_goes_to_the_oldest_waiter() -> None:
    state = make_state(max_size=2)
    a, b = open_entry(state), open_entry(state)
    first, second = waiter(state), waiter(state)
    state.checkin(a, 1.0)
    assert plan_wakes(state) == [first]
    assert first.result is a
    state.checkin(b, 2.0)
    assert plan_wakes(state) == [second]
    assert second.result is b
    assert not state.idle and not state.waiters


def test_a_newcomer_never_barges_past_a_waiter() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    queued = waiter(state)
    state.checkin(entry, 1.0)
    assert queued.result is entry
    assert state.checkout(1.0) is None  # the newcomer finds nothing idle


def test_waiter_that_times_out_before_a_hand_off_leaves_the_queue() -> None:
    state = make_state(max_size=1)
    open_entry(state)
    queued = waiter(state)
    state.cancel_waiter(queued, 5.0, timed_out=True)
    assert not state.waiters
    assert state.snapshot().timeouts == 1


def test_waiter_that_times_out_after_a_hand_off_gives_the_connection_back() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    late = waiter(state)
    state.checkin(entry, 1.0)
    assert late.result is entry
    state.take_plan()
    state.cancel_waiter(late, 2.0, timed_out=True)
    assert list(state.idle) == [entry]
    stats = state.snapshot()
    assert (stats.in_use, stats.idle, stats.timeouts, stats.checkouts) == (0, 1, 1, 1)


def test_connection_given_back_by_a_cancelled_waiter_goes_to_the_next_waiter() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    cancelled, next_in_line = waiter(state), waiter(state)
    state.checkin(entry, 1.0)
    state.take_plan()
    state.cancel_waiter(cancelled, 1.5, timed_out=False)
    assert plan_wakes(state) == [next_in_line]
    assert next_in_line.result is entry
    assert state.snapshot().timeouts == 0


def test_connect_slot_given_back_by_a_cancelled_waiter_is_freed() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    queued = waiter(state)
    state.checkin(entry, 1.0, "close_on_return")  # its slot goes to the waiter
    assert queued.result is CONNECT
    state.cancel_waiter(queued, 1.0, timed_out=True)
    assert (state.size, state.connecting) == (0, 0)


# -- refusing to wait --------------------------------------------------------------------


def test_zero_timeout_refuses_at_once_with_the_counts() -> None:
    state = make_state(max_size=1)
    open_entry(state)
    assert state.checkout(0.0) is None
    with pytest.raises(PoolTimeout) as caught:
        state.add_waiter(0.0, 0.0, signal=None)
    assert "'core'" in str(caught.value)
    assert "in_use=1 waiting=0 max=1" in str(caught.value)
    assert not state.waiters


def test_max_waiting_refuses_the_next_caller() -> None:
    state = make_state(max_size=1, max_waiting=1)
    open_entry(state)
    waiter(state)
    with pytest.raises(TooManyWaiters, match="max_waiting=1"):
        waiter(state)
    assert len(state.waiters) == 1
    assert state.snapshot().refused == 1


def test_max_waiting_zero_lets_nobody_wait() -> None:
    state = make_state(max_size=1, max_waiting=0)
    open_entry(state)
    with pytest.raises(TooManyWaiters):
        waiter(state)


def test_pool_timeout_is_a_timeout_error() -> None:
    assert issubclass(PoolTimeout, TimeoutError)


def test_expire_waiters_withdraws_those_past_their_deadline() -> None:
    state = make_state(max_size=1)
    open_entry(state)
    early = waiter(state, now=0.0, timeout=1.0)
    late = waiter(state, now=0.0, timeout=5.0)
    assert state.expire_waiters(2.0) == [early]
    assert list(state.waiters) == [late]


# -- max_age and jitter ------------------------------------------------------------------


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999])
def test_max_age_is_shortened_by_at_most_five_percent(draw: float) -> None:
    state = make_state(rng=draw, max_age=100.0)
    entry = open_entry(state, now=10.0)
    assert entry.expires_at == pytest.approx(10.0 + 100.0 * (1 - 0.05 * draw))
    assert 10.0 + 95.0 <= entry.expires_at <= 110.0


def test_jitter_spreads_the_expiry_of_connections_opened_together() -> None:
    draws = iter([0.1, 0.9])
    state = PoolState(PoolConfig.build("core", max_age=100.0), rng=lambda: next(draws))
    a, b = open_entry(state), open_entry(state)
    assert a.expires_at != b.expires_at


def test_connection_past_max_age_is_closed_on_return() -> None:
    state = make_state(max_age=30.0)
    entry = open_entry(state)
    assert state.retire_reason(entry, 29.0) is None
    assert state.retire_reason(entry, 30.0) == "max_age"


def test_idle_connection_past_max_age_is_skipped_and_closed_on_checkout() -> None:
    state = make_state(max_size=2, max_age=30.0, max_idle=None)
    old = open_entry(state, now=0.0)
    state.checkin(old, 1.0)
    assert state.checkout(31.0) is CONNECT  # the old one is retired, a new one is due
    assert plan_closes(state) == [old]
    assert old.close_reason == "max_age"


def test_zero_max_age_or_max_idle_closes_on_every_return() -> None:
    for settings in ({"max_age": 0}, {"max_idle": 0}):
        state = make_state(**settings)
        entry = open_entry(state)
        assert state.retire_reason(entry, 0.0) == "close_on_return"


def test_closed_return_frees_the_slot_and_counts_the_reason() -> None:
    state = make_state(max_size=1, max_idle=0)
    entry = open_entry(state)
    state.checkin(entry, 1.0, "close_on_return")
    stats = state.snapshot()
    assert (stats.size, stats.in_use, stats.closes["close_on_return"]) == (0, 0, 1)


def test_closed_return_passes_the_slot_to_a_waiter_as_a_connect() -> None:
    state = make_state(max_size=1, max_idle=0)
    entry = open_entry(state)
    queued = waiter(state)
    state.checkin(entry, 1.0, "close_on_return")
    assert plan_wakes(state) == [queued]
    assert queued.result is CONNECT
    assert state.size == 1


# -- max_idle and min_size ----------------------------------------------------------------


def test_maintenance_closes_connections_idle_longer_than_max_idle() -> None:
    state = make_state(max_size=3, max_idle=10.0, max_age=None)
    a, b = open_entry(state), open_entry(state)
    state.checkin(a, 0.0)
    state.checkin(b, 5.0)
    state.maintain(9.0)
    assert state.take_plan() is None
    state.maintain(10.0)
    assert plan_closes(state) == [a]
    assert list(state.idle) == [b]


def test_maintenance_keeps_min_size_connections_however_idle() -> None:
    state = make_state(max_size=3, min_size=1, max_idle=10.0, max_age=None)
    a, b = open_entry(state), open_entry(state)
    state.checkin(a, 0.0)
    state.checkin(b, 0.0)
    state.maintain(100.0)
    assert plan_closes(state) == [a]
    state.entries_closed([a])
    assert list(state.idle) == [b]
    state.maintain(200.0)
    assert state.take_plan() is None


def test_checkout_lazily_closes_the_connection_idle_the_longest() -> None:
    state = make_state(max_size=3, max_idle=10.0, max_age=None)
    a, b = open_entry(state), open_entry(state)
    state.checkin(a, 0.0)
    state.checkin(b, 8.0)
    assert state.checkout(11.0) is b
    assert plan_closes(state) == [a]


def test_maintenance_refills_to_min_size() -> None:
    state = make_state(max_size=4, min_size=2)
    state.maintain(0.0)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 2
    assert (state.size, state.connecting) == (2, 2)
    state.add_idle(object(), 0.1)
    state.add_idle(object(), 0.1)
    assert (len(state.idle), state.connecting, state.snapshot().checkouts) == (2, 0, 0)
    state.maintain(0.2)
    assert state.take_plan() is None


def test_connection_opened_by_the_pool_goes_to_a_waiter_first() -> None:
    state = make_state(max_size=1, min_size=1)
    state.maintain(0.0)
    state.take_plan()
    queued = waiter(state)
    entry = state.add_idle(object(), 0.5)
    assert queued.result is entry
    assert plan_wakes(state) == [queued]


def test_maintenance_deadline_is_the_next_idle_expiry() -> None:
    state = make_state(max_size=2, max_idle=10.0, max_age=None)
    entry = open_entry(state)
    state.checkin(entry, 3.0)
    assert state.maintain(4.0) == 13.0


def test_maintenance_deadline_with_nothing_idle_is_one_max_idle_away() -> None:
    state = make_state(max_idle=10.0, max_age=None)
    assert state.maintain(4.0) == 14.0


def test_maintenance_deadline_includes_max_age_of_idle_connections() -> None:
    state = make_state(max_idle=None, max_age=30.0)
    entry = open_entry(state, now=0.0)
    state.checkin(entry, 1.0)
    assert state.maintain(2.0) == entry.expires_at


def test_no_deadline_without_max_idle_or_max_age() -> None:
    state = make_state(max_idle=None, max_age=None)
    assert state.maintain(0.0) is None


def test_closed_entries_free_their_slots_for_waiters() -> None:
    state = make_state(max_size=1, max_idle=1.0, max_age=None)
    entry = open_entry(state)
    state.checkin(entry, 0.0)
    state.maintain(5.0)
    assert plan_closes(state) == [entry]
    queued = waiter(state, now=5.0)  # the slot is still taken while the close runs
    state.entries_closed([entry])
    assert queued.result is CONNECT
    assert state.snapshot().closes["max_idle"] == 1


# -- late connects and abandoned proxies -------------------------------------------------


def test_abandoned_connect_keeps_its_slot_until_it_ends() -> None:
    state = make_state(max_size=1)
    assert state.checkout(0.0) is CONNECT
    state.count_connect_timeout()
    assert state.checkout(1.0) is None
    state.connect_abandoned(closed=True)
    stats = state.snapshot()
    assert (stats.size, stats.connect_timeouts, stats.closes["late_connect"]) == (0, 1, 1)


def test_abandoned_checkout_is_closed_not_reused() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    state.abandon(entry)
    assert plan_closes(state) == [entry]
    state.entries_closed([entry])
    assert state.size == 0
    assert state.snapshot().closes["abandoned"] == 1


# -- closing -----------------------------------------------------------------------------


def test_close_wakes_waiters_with_pool_closed() -> None:
    state = make_state(max_size=1)
    held = open_entry(state)
    queued = waiter(state)
    state.close()
    assert plan_wakes(state) == [queued]
    assert isinstance(queued.result, PoolClosed)
    assert held.state == "in_use"  # closed when it comes back, not under its borrower


def test_close_retires_every_idle_connection() -> None:
    state = make_state(max_size=2)
    a, b = open_entry(state), open_entry(state)
    state.checkin(a, 0.0)
    state.checkin(b, 0.0)
    state.close()
    assert {e.serial for e in plan_closes(state)} == {a.serial, b.serial}


def test_closed_pool_refuses_checkout() -> None:
    state = make_state()
    state.close()
    with pytest.raises(PoolClosed, match="'core' is closed"):
        state.checkout(0.0)


def test_connection_returned_to_a_closed_pool_is_closed() -> None:
    state = make_state()
    entry = open_entry(state)
    state.close()
    assert state.retire_reason(entry, 0.0) == "pool_closed"


def test_connect_finishing_after_close_is_closed() -> None:
    state = make_state()
    assert state.checkout(0.0) is CONNECT
    state.close()
    assert state.connected(object(), 0.0) is None
    closes = plan_closes(state)
    assert len(closes) == 1 and closes[0].close_reason == "pool_closed"


def test_closed_pool_hands_freed_slots_to_nobody() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state)
    state.close()
    state.checkin(entry, 0.0, "pool_closed")
    assert state.size == 0


# -- invariants under random operation sequences ------------------------------------------


def _check_invariants(state: PoolState, held: list[Entry]) -> None:
    assert 0 <= state.size <= state.config.max_size
    assert state.in_use >= 0
    assert len({id(e) for e in state.idle}) == len(state.idle)
    assert all(e.state == "idle" for e in state.idle)
    if state.waiters:
        assert not state.idle, "a waiter waits while a connection sits idle"
        assert state.size == state.config.max_size


@pytest.mark.parametrize("seed", range(20))
def test_random_operation_sequences_keep_the_books_straight(seed: int) -> None:
    rnd = random.Random(seed)
    state = PoolState(
        PoolConfig.build("fuzz", max_size=3, min_size=1, max_idle=5.0, max_age=20.0),
        rng=rnd.random,
    )
    held: list[Entry] = []
    waiting: list[Waiter] = []
    closing: list[Entry] = []
    now = 0.0

    def settle() -> None:
        plan = state.take_plan()
        if plan is None:
            return
        closing.extend(plan.close)
        for _ in range(plan.connect):
            state.add_idle(object(), now)
        for w in plan.wake:
            waiting.remove(w)
            if isinstance(w.result, OSError):  # failed fast: connects are failing
                continue
            if w.result is CONNECT:
                entry = state.connected(object(), now)
                assert entry is not None
                held.append(entry)
            else:
                assert isinstance(w.result, Entry)
                held.append(w.result)
        settle()

    for _ in range(400):
        now += rnd.random()
        action = rnd.randrange(6)
        if action == 0:
            try:
                got = state.checkout(now)
            except OSError:  # connects are failing: this caller failed fast
                continue
            if got is CONNECT:
                if rnd.random() < 0.2:
                    state.connect_failed(now, OSError("refused"))
                else:
                    entry = state.connected(object(), now)
                    assert entry is not None
                    held.append(entry)
            elif isinstance(got, Entry):
                held.append(got)
            else:
                waiting.append(state.add_waiter(now, 10.0, None))
        elif action == 1 and held:
            entry = held.pop(rnd.randrange(len(held)))
            reason = state.retire_reason(entry, now)
            if reason is None and rnd.random() < 0.1:
                reason = "reset_failed"
            state.checkin(entry, now, reason)
        elif action == 2 and waiting:
            w = waiting.pop(rnd.randrange(len(waiting)))
            state.cancel_waiter(w, now, timed_out=True)
        elif action == 3:
            state.maintain(now)
        elif action == 4 and closing:
            state.entries_closed(closing)
            closing.clear()
        elif action == 5 and held and rnd.random() < 0.1:
            state.abandon(held.pop())
        settle()
        _check_invariants(state, held)
        assert state.in_use == len(held) + len([w for w in waiting if w.result is not None]), (
            "every connection in use is held by exactly one caller"
        )


# -- the database unreachable: fail fast, back off, cap connects ---------------------------


def test_callers_fail_fast_with_the_drivers_error_while_connects_fail() -> None:
    state = make_state(rng=0.5, max_size=4, reconnect_min=1.0)
    assert state.checkout(10.0) is CONNECT
    refused = ConnectionRefusedError(111, "connection refused")
    state.connect_failed(10.0, refused)
    with pytest.raises(ConnectionRefusedError) as caught:
        state.checkout(10.2)  # before retry_at = 10 + 0.5 * 1.0
    assert caught.value is not refused and caught.value.__cause__ is refused
    assert caught.value.args == refused.args
    assert any("'core': the database is unreachable" in n for n in caught.value.__notes__)
    assert state.snapshot().unreachable == 1
    assert state.size == 0


def test_one_attempt_at_a_time_after_the_backoff_and_success_clears_it() -> None:
    state = make_state(rng=0.5, max_size=4, reconnect_min=1.0)
    assert state.checkout(0.0) is CONNECT
    state.connect_failed(0.0, OSError("down"))
    assert state.checkout(0.6) is CONNECT  # past retry_at: this caller probes
    with pytest.raises(OSError):
        state.checkout(0.6)  # while the probe runs, the others fail fast
    assert state.connected(object(), 0.7) is not None
    assert not state.health.down
    assert state.checkout(0.8) is CONNECT


def test_backoff_grows_exponentially_to_its_cap_with_full_jitter() -> None:
    state = make_state(rng=1.0, reconnect_min=0.1, reconnect_max=1.0)
    delays = []
    for _ in range(6):
        state.health.failed(100.0, OSError("down"))
        delays.append(round(state.health.retry_at - 100.0, 6))
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    zero_draw = make_state(rng=0.0)
    zero_draw.health.failed(5.0, None)
    assert zero_draw.health.retry_at == 5.0  # full jitter: anywhere from 0 to the ceiling


def test_connects_beyond_max_connecting_wait_for_one_to_finish() -> None:
    state = make_state(max_size=5, max_connecting=2)
    assert state.checkout(0.0) is CONNECT
    assert state.checkout(0.0) is CONNECT
    assert state.checkout(0.0) is None  # room in the pool, but two connects already run
    queued = state.add_waiter(0.0, 10.0, None)
    assert state.connected(object(), 0.1) is not None
    assert plan_wakes(state) == [queued]
    assert queued.result is CONNECT
    assert (state.size, state.connecting) == (3, 2)


def test_refill_to_min_size_respects_max_connecting_and_the_backoff() -> None:
    state = make_state(rng=1.0, max_size=10, min_size=6, max_connecting=2, reconnect_min=1.0)
    state.maintain(0.0)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 2
    state.connect_failed(0.0, OSError("down"))
    state.connect_failed(0.0, OSError("down"))
    assert state.maintain(0.5) == state.health.retry_at
    assert state.take_plan() is None  # backing off
    state.maintain(state.health.retry_at)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 2


# -- checks before a checkout ----------------------------------------------------------


def test_check_level_probes_every_checkout_where_the_driver_can() -> None:
    from dbapi_pool._core.state import PROBE

    state = make_state(max_size=2, check_idle_after=0.5)
    entry = open_entry(state, now=0.0)
    state.checkin(entry, 1.0)
    assert state.check_level(entry, 1.0, can_probe=True) == PROBE
    assert state.check_level(entry, 9.0, can_probe=True) == PROBE


def test_check_level_pings_past_the_window_where_the_driver_cannot_probe() -> None:
    from dbapi_pool._core.state import PING

    state = make_state(max_size=2, check_idle_after=0.5)
    entry = open_entry(state, now=0.0)
    state.checkin(entry, 1.0)
    assert state.check_level(entry, 1.2, can_probe=False) == 0
    assert state.check_level(entry, 1.5, can_probe=False) == PING


def test_check_level_trusts_every_connection_without_check_idle_after() -> None:
    state = make_state(max_size=2, check_idle_after=None)
    entry = open_entry(state, now=0.0)
    state.checkin(entry, 1.0)
    assert state.check_level(entry, 1e9, can_probe=True) == 0
    assert state.check_level(entry, 1e9, can_probe=False) == 0


@pytest.mark.parametrize("can_probe", [True, False])
def test_check_level_pings_after_a_failure_and_with_pre_ping(can_probe: bool) -> None:
    from dbapi_pool._core.state import PING

    state = make_state(max_size=2, check_idle_after=None)
    entry = open_entry(state, now=0.0)
    state.checkin(entry, 1.0)
    state.invalidate(2.0)
    assert state.check_level(entry, 2.1, can_probe) == PING
    always = make_state(pre_ping=True)
    assert always.check_level(open_entry(always), 0.0, can_probe) == PING


def test_connection_marked_broken_is_closed_on_return() -> None:
    state = make_state()
    entry = open_entry(state)
    entry.broken = True
    assert state.retire_reason(entry, 0.0) == "broken"


# -- leaks -------------------------------------------------------------------------------


def test_checkouts_held_past_leak_timeout_are_reported_once() -> None:
    state = make_state(max_size=3, leak_timeout=5.0)
    early, late = open_entry(state, now=0.0), open_entry(state, now=3.0)
    assert state.leaks(4.9) == []
    assert state.maintain(4.9) == 5.0
    assert state.leaks(5.0) == [early]
    assert state.leaks(7.9) == []
    assert state.leaks(8.0) == [late]
    state.checkin(early, 9.0)
    assert early not in (state.lent or set())
    assert state.snapshot().leaks == 2


def test_leaks_are_not_tracked_without_leak_timeout() -> None:
    state = make_state()
    open_entry(state)
    assert state.lent is None and state.leaks(1e9) == []


# -- the hand-off window (handoff_after) ---------------------------------------------------


def test_connection_returned_inside_the_window_goes_idle_for_the_running_caller() -> None:
    state = make_state(max_size=1, handoff_after=0.001)
    entry = open_entry(state, now=0.0)
    queued = waiter(state, now=1.0)
    state.checkin(entry, 1.0005)  # the waiter has waited 0.5 ms: passed over
    assert queued.result is None and list(state.idle) == [entry]
    assert state.checkout(1.0006) is entry  # the running caller takes it again


def test_after_the_window_returns_go_straight_to_the_oldest_waiter() -> None:
    state = make_state(max_size=1, handoff_after=0.001)
    entry = open_entry(state, now=0.0)
    queued = waiter(state, now=1.0)
    state.checkin(entry, 1.002)
    assert queued.result is entry
    assert plan_wakes(state) == [queued]


def test_waiter_polled_after_the_window_takes_what_it_was_passed_over_for() -> None:
    state = make_state(max_size=1, handoff_after=0.001)
    entry = open_entry(state, now=0.0)
    queued = waiter(state, now=1.0)
    state.checkin(entry, 1.0005)
    assert state.poll_waiter(queued, 1.001) is entry
    assert not state.waiters and not queued.active
    assert state.in_use == 1


def test_polled_waiter_with_nothing_idle_waits_on() -> None:
    state = make_state(max_size=1, handoff_after=0.001)
    open_entry(state, now=0.0)
    queued = waiter(state, now=1.0)
    assert state.poll_waiter(queued, 1.001) is None
    assert list(state.waiters) == [queued] and queued.active


def test_strict_order_without_a_window() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state, now=0.0)
    queued = waiter(state, now=1.0)
    state.checkin(entry, 1.0)  # waited 0 s, and yet: first come, first served
    assert queued.result is entry


def test_without_a_window_a_caller_that_returned_queues_behind_the_waiter() -> None:
    state = make_state(max_size=1)
    entry = open_entry(state, now=0.0)
    first = waiter(state, now=1.0)
    state.checkin(entry, 1.0)
    second = waiter(state, now=1.0)  # the returner, back at once: nothing idle for it
    assert first.result is entry and second.result is None
    state.checkin(entry, 1.1)
    assert second.result is entry and list(state.waiters) == []
