"""Deterministic tests of the core's runtime operations: resize, drain, pause, check, detach."""

from __future__ import annotations

from typing import Any

import pytest

from dbapi_pool._core import CONNECT, Entry, PoolState, Waiter
from dbapi_pool.config import PoolConfig
from dbapi_pool.errors import PoolClosed, PoolError


def make_state(**settings: Any) -> PoolState:
    return PoolState(PoolConfig.build("core", **settings), rng=lambda: 0.0)


def open_entry(state: PoolState, now: float = 0.0) -> Entry:
    assert state.checkout(now) is CONNECT
    entry = state.connected(object(), now)
    assert entry is not None
    return entry


def idle_entries(state: PoolState, count: int, now: float = 0.0) -> list[Entry]:
    entries = [open_entry(state, now) for _ in range(count)]
    for entry in entries:
        state.checkin(entry, now)
    return entries


def waiter(state: PoolState, now: float = 0.0) -> Waiter:
    assert state.checkout(now) is None
    return state.add_waiter(now, 10.0, signal=None)


def closes(state: PoolState) -> list[Entry]:
    plan = state.take_plan()
    return [] if plan is None else plan.close


# -- resize --------------------------------------------------------------------------------


def test_shrinking_closes_the_longest_idle_connections_above_the_new_max_at_once() -> None:
    state = make_state(max_size=4)
    oldest, *_ = entries = idle_entries(state, 4)
    state.resize(1.0, max_size=2)
    closed = closes(state)
    assert closed == entries[:2]
    assert oldest.close_reason == "resized"
    state.entries_closed(closed)
    assert (state.size, len(state.idle), state.config.max_size) == (2, 2, 2)


def test_shrinking_closes_connections_in_use_as_they_come_back() -> None:
    state = make_state(max_size=3)
    held = [open_entry(state) for _ in range(3)]
    state.resize(1.0, max_size=1)
    assert closes(state) == []
    state.checkin(held[0], 2.0)
    state.checkin(held[1], 2.0)
    closed = closes(state)
    assert closed == held[:2]
    state.entries_closed(closed)
    state.checkin(held[2], 3.0)
    assert closes(state) == []
    assert list(state.idle) == [held[2]]
    assert state.snapshot().closes["resized"] == 2


def test_growing_gives_the_new_room_to_the_waiters_at_once() -> None:
    state = make_state(max_size=1)
    open_entry(state)
    first, second = waiter(state), waiter(state)
    state.resize(1.0, max_size=3)
    assert first.result is CONNECT and second.result is CONNECT
    assert state.size == 3


def test_raising_min_size_plans_the_missing_connections() -> None:
    state = make_state(max_size=4)
    idle_entries(state, 1)
    state.resize(1.0, min_size=3)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 2


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"max_size": -1}, "max_size must be >= 1"),
        ({"min_size": -1}, "min_size must be >= 0"),
        ({"min_size": 5}, r"min_size \(5\) must not exceed max_size \(4\)"),
        ({"max_size": 0}, "max_size must be >= 1"),
        ({}, "needs min_size or max_size"),
    ],
)
def test_resize_refuses_bad_sizes_naming_the_pool_and_changes_nothing(
    sizes: dict[str, int], message: str
) -> None:
    state = make_state(max_size=4)
    with pytest.raises(ValueError, match=message) as caught:
        state.resize(0.0, **sizes)
    assert "'core'" in str(caught.value)
    assert (state.config.min_size, state.config.max_size) == (0, 4)


def test_resize_of_a_closed_pool_raises_pool_closed() -> None:
    state = make_state()
    state.close()
    with pytest.raises(PoolClosed):
        state.resize(0.0, max_size=2)


# -- drain ---------------------------------------------------------------------------------


def test_drain_closes_idle_connections_at_once_and_in_use_ones_on_return() -> None:
    state = make_state(max_size=3)
    held = open_entry(state)
    idle = idle_entries(state, 2)
    state.drain(1.0)
    assert closes(state) == idle
    assert state.retire_reason(held, 2.0) == "drained"
    state.checkin(held, 2.0)
    assert closes(state) == [held]
    assert held.close_reason == "drained"


def test_after_drain_a_checkout_gets_a_new_connection() -> None:
    state = make_state(max_size=2)
    idle_entries(state, 1)
    state.drain(1.0)
    state.entries_closed(closes(state))
    assert state.checkout(2.0) is CONNECT
    fresh = state.connected(object(), 2.0)
    assert fresh is not None
    assert state.retire_reason(fresh, 3.0) is None
    state.checkin(fresh, 3.0)
    assert state.checkout(4.0) is fresh


def test_a_connect_running_during_drain_counts_as_old() -> None:
    state = make_state(max_size=2)
    assert state.checkout(0.0) is CONNECT  # connecting while drain() runs
    state.drain(1.0)
    entry = state.connected(object(), 2.0)
    assert entry is not None
    assert state.retire_reason(entry, 3.0) == "drained"


def test_a_refill_connect_running_during_drain_is_closed_instead_of_kept_idle() -> None:
    state = make_state(min_size=1, max_size=2)
    state.maintain(0.0)
    state.take_plan()
    state.drain(1.0)
    entry = state.add_idle(object(), 2.0)
    assert entry is not None
    assert closes(state) == [entry]


def test_drain_refills_to_min_size() -> None:
    state = make_state(min_size=2, max_size=4)
    idle_entries(state, 2)
    state.drain(1.0)
    plan = state.take_plan()
    assert plan is not None
    assert (len(plan.close), plan.connect) == (2, 2)


def test_drain_of_a_closed_pool_raises_pool_closed() -> None:
    state = make_state()
    state.close()
    with pytest.raises(PoolClosed, match="'core'"):
        state.drain(0.0)


# -- pause ---------------------------------------------------------------------------------


def test_paused_pool_lends_nothing_and_opens_nothing() -> None:
    state = make_state(max_size=2)
    idle_entries(state, 1)
    state.pause()
    assert state.checkout(1.0) is None
    assert state.checkout(1.0, connect=False) is None
    assert state.size == 1


def test_connections_returned_while_paused_stay_idle_and_waiters_wait() -> None:
    state = make_state(max_size=1)
    held = open_entry(state)
    queued = waiter(state)
    state.pause()
    state.checkin(held, 1.0)
    assert queued.result is None
    assert list(state.idle) == [held]


def test_resume_hands_idle_connections_then_free_slots_to_the_waiters_in_order() -> None:
    state = make_state(max_size=2)
    held = open_entry(state)
    state.pause()
    first, second = waiter(state), waiter(state)
    state.checkin(held, 1.0)
    state.resume(2.0)
    assert first.result is held
    assert second.result is CONNECT
    plan = state.take_plan()
    assert plan is not None and plan.wake == [first, second]


def test_pause_closes_nothing_and_maintenance_waits_for_resume() -> None:
    state = make_state(max_size=2, max_idle=1.0)
    idle_entries(state, 2)
    state.pause()
    assert state.maintain(100.0) is None
    assert closes(state) == []


def test_pausing_twice_or_resuming_a_running_pool_is_an_error() -> None:
    state = make_state()
    with pytest.raises(PoolError, match="'core' is not paused"):
        state.resume(0.0)
    state.pause()
    with pytest.raises(PoolError, match="'core' is already paused"):
        state.pause()


def test_closing_a_paused_pool_fails_its_waiters_with_pool_closed() -> None:
    state = make_state(max_size=1)
    open_entry(state)
    state.pause()
    queued = waiter(state)
    state.close()
    assert isinstance(queued.result, PoolClosed)


# -- check, detach -------------------------------------------------------------------------


def test_borrowed_idle_connections_are_not_lent_meanwhile() -> None:
    state = make_state(max_size=2)
    idle_entries(state, 2)
    borrowed = state.borrow_idle(1.0)
    assert len(borrowed) == 2 and not state.idle
    assert state.checkout(1.0) is None
    assert state.snapshot().checkouts == 2  # the check is not a checkout


def test_a_live_connection_goes_back_to_its_place_by_last_use() -> None:
    state = make_state(max_size=3)
    a, b, c = open_entry(state), open_entry(state), open_entry(state)
    state.checkin(a, 1.0)
    state.checkin(b, 2.0)
    state.checkin(c, 3.0)
    [borrowed] = state.borrow_idle(4.0, quiet_for=2.5)
    assert borrowed is a
    state.give_back(a, 5.0)
    assert list(state.idle) == [a, b, c]
    assert (a.last_used_at, a.pinged_at) == (1.0, 5.0)


def test_a_dead_connection_given_back_frees_its_slot_and_is_replaced_to_min_size() -> None:
    state = make_state(min_size=1, max_size=2)
    [entry] = idle_entries(state, 1)
    [borrowed] = state.borrow_idle(1.0)
    state.give_back(borrowed, 1.0, "failed_check")
    plan = state.take_plan()
    assert plan is not None and plan.connect == 1
    assert state.snapshot().closes["failed_check"] == 1
    assert entry.state == "closed"


def test_a_connection_given_back_while_a_caller_waits_goes_to_that_caller() -> None:
    state = make_state(max_size=1)
    [entry] = idle_entries(state, 1)
    [borrowed] = state.borrow_idle(1.0)
    queued = waiter(state)
    state.give_back(borrowed, 2.0)
    assert queued.result is entry


def test_quiet_for_takes_only_connections_neither_used_nor_pinged_lately() -> None:
    state = make_state(max_size=2)
    a, b = open_entry(state), open_entry(state)
    state.checkin(a, 0.0)
    state.checkin(b, 3.0)
    assert state.borrow_idle(5.0, quiet_for=5.0) == [a]
    state.give_back(a, 5.0)  # pinged at 5
    assert state.borrow_idle(9.0, quiet_for=5.0) == [b]


def test_detached_connection_frees_its_slot_for_a_waiter() -> None:
    state = make_state(max_size=1)
    held = open_entry(state)
    queued = waiter(state)
    assert state.detach(held)
    assert queued.result is CONNECT
    assert held.state == "detached"
    assert not state.detach(held)  # once


def test_ready_counts_open_connections_against_min_size() -> None:
    state = make_state(min_size=2, max_size=3)
    assert not state.ready
    state.maintain(0.0)
    assert not state.ready  # connecting
    state.add_idle(object(), 1.0)
    state.add_idle(object(), 1.0)
    assert state.ready


def test_keepalive_makes_maintenance_wake_when_an_idle_connection_falls_due() -> None:
    state = make_state(max_size=2, max_idle=None, max_age=None, keepalive=30.0)
    [entry] = idle_entries(state, 1, now=10.0)
    assert state.maintain(11.0) == 40.0
    state.give_back(state.borrow_idle(40.0, quiet_for=30.0)[0], 40.0)
    assert state.maintain(41.0) == 70.0
    assert entry.last_used_at == 10.0  # a ping is not a use


def test_keepalive_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keepalive must be > 0"):
        make_state(keepalive=0)


def test_keepalive_makes_maintenance_look_again_while_connections_are_in_use() -> None:
    # One in use now is returned later, and due a ping keepalive after that: waking at
    # now + keepalive is early enough (without it, the worker slept its idle minute).
    state = make_state(max_size=2, max_idle=None, max_age=None, keepalive=30.0)
    open_entry(state)
    assert state.maintain(5.0) == 35.0


# -- refill, surplus and the late poll ----------------------------------------------------


def test_a_refill_capped_by_max_connecting_goes_on_as_connects_end() -> None:
    state = make_state(min_size=4, max_size=4, max_connecting=2)
    state.maintain(0.0)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 2
    state.add_idle(object(), 1.0)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 1  # the slot the first connect freed
    state.add_idle(object(), 1.0)
    plan = state.take_plan()
    assert plan is not None and plan.connect == 1
    assert state.size == 4


def test_a_connection_above_a_lowered_max_size_is_retired_before_its_reset() -> None:
    state = make_state(max_size=2)
    held = [open_entry(state), open_entry(state)]
    state.resize(1.0, max_size=1)
    assert state.retire_reason(held[0], 2.0) == "resized"
    state.checkin(held[0], 2.0, "resized")
    assert state.retire_reason(held[1], 2.0) is None
    assert state.snapshot().closes["resized"] == 1


def test_short_of_min_says_when_a_refill_is_due() -> None:
    state = make_state(min_size=1, max_size=2)
    assert state.short_of_min
    state.maintain(0.0)
    state.add_idle(object(), 0.0)
    assert not state.short_of_min
    [entry] = state.borrow_idle(1.0)
    state.give_back(entry, 1.0, "failed_check")  # plans its own refill
    state.take_plan()
    assert not state.short_of_min  # connecting counts: the refill is under way
    state.connect_failed(2.0, ConnectionRefusedError())
    assert not state.short_of_min  # connects failing: the backoff decides


def test_a_late_poll_of_a_younger_waiter_serves_the_oldest_first() -> None:
    state = make_state(max_size=1, handoff_after=0.005)
    held = open_entry(state)
    older, younger = waiter(state, 0.0), waiter(state, 0.001)
    state.checkin(held, 0.002)  # within the window: back to the idle stack
    assert list(state.idle) == [held]
    assert state.poll_waiter(younger, 0.007) is None  # its thread ran first
    assert older.result is held
    plan = state.take_plan()
    assert plan is not None and plan.wake == [older]
    assert list(state.waiters) == [younger]
