"""A function-call-count guard on the hot path (as SQLAlchemy does for its pool).

Counting calls is deterministic where timing is not (these machines are shared and noisy):
if an uncontended get() + put() starts making more Python or C calls, this fails, and the
change has to justify the cost (then lower or raise the budget here, with the reason).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

#: Calls made by one uncontended ``pool.get()`` + ``pool.put(conn)``, measured 2026-11-30:
#: get (whose first look at the idle stack is inline), checkout, deque.pop, the proxy's
#: lend and its object.__new__, put, detach, retire_reason, checkin, deque.append, the
#: proxy's __del__, two clock reads and two lock exits. (The proxy's slots are set through
#: their descriptors, C calls the profiler does not see; its __init__ cost a frame more.)
#: Issue 12 added four C calls, none allocating: the holder's ident, the caller's frame
#: and the checkout tag's context variable (holders() and PoolTimeout messages name who
#: holds what, from where), and the bisect of the use-time histogram. (Listeners add
#: nothing while there are none: see the test below.)
BUDGET_GET_PUT = 19
#: The same with one cursor taken (issue 11: put() closes it, the checkout may be over):
#: the proxy's cursor(), the driver's cursor(), the reset step that closes it (the pool has
#: nothing else to reset here) and the driver's close(); no list, no other frame.
BUDGET_GET_CURSOR_PUT = BUDGET_GET_PUT + 4


class NoOpCursor:
    def close(self) -> None:
        pass


class NoOpConnection:
    def cursor(self) -> NoOpCursor:
        return NoOpCursor()

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


class NoOpDriver:
    """A DB-API module whose connections do nothing: only the pool's own work is counted."""

    __name__ = "noop_driver"
    threadsafety = 1

    @staticmethod
    def connect() -> NoOpConnection:
        return NoOpConnection()


def count_calls(action: Callable[[], Any]) -> Counter[str]:
    calls: Counter[str] = Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls[f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_code.co_name}"] += 1
        elif event == "c_call":
            calls[f"C:{getattr(arg, '__qualname__', arg)}"] += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    calls.pop("C:setprofile", None)
    calls.pop(f"{__file__.rsplit('/', 1)[-1]}:{getattr(action, '__name__', '')}", None)
    return calls


@pytest.fixture
def warm_pool() -> Any:
    pool = ConnectionPool(NoOpDriver(), max_size=4, reset=None, max_idle=None, max_age=None)
    pool.put(pool.get())  # the connection exists and is idle: the uncontended case
    yield pool
    pool.close()


def test_uncontended_get_and_put_stay_within_their_call_budget(warm_pool: Any) -> None:
    def cycle() -> None:
        warm_pool.put(warm_pool.get())

    calls = count_calls(cycle)
    total = sum(calls.values())
    assert total <= BUDGET_GET_PUT, f"{total} calls (budget {BUDGET_GET_PUT}): {dict(calls)}"


def test_a_checkout_with_one_cursor_stays_within_its_call_budget(warm_pool: Any) -> None:
    def cycle() -> None:
        conn = warm_pool.get()
        conn.cursor()
        warm_pool.put(conn)

    calls = count_calls(cycle)
    total = sum(calls.values())
    assert total <= BUDGET_GET_CURSOR_PUT, (
        f"{total} calls (budget {BUDGET_GET_CURSOR_PUT}): {dict(calls)}"
    )
    assert calls["test_hot_path.py:close"] == 1  # closed by put()


def test_hot_path_does_no_logging_and_reads_the_clock_once_each_way(warm_pool: Any) -> None:
    calls = count_calls(lambda: warm_pool.put(warm_pool.get()))
    assert not any("logging" in name or "__init__.py:debug" in name for name in calls)
    assert calls["C:monotonic"] == 2


class CloseListener:
    """Listens to closes only: a checkout and its return must not pay for it."""

    def on_close(self, pool: Any, conn: Any, reason: str) -> None:
        pass


class CheckoutListener:
    def __init__(self) -> None:
        self.heard = 0

    def on_checkout(self, pool: Any, conn: Any, waited: float) -> None:
        self.heard += 1

    def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
        self.heard += 1


def test_listeners_cost_nothing_on_events_nobody_listens_to(warm_pool: Any) -> None:
    """Issue 12: with no listener (or none for these events) an event costs one
    attribute test, no call: the budget is the same, call for call."""
    without = count_calls(lambda: warm_pool.put(warm_pool.get()))
    warm_pool.add_listener(CloseListener())
    with_close_listener = count_calls(lambda: warm_pool.put(warm_pool.get()))
    assert with_close_listener == without


def test_a_listener_costs_its_own_calls_and_one_emit_each(warm_pool: Any) -> None:
    without = count_calls(lambda: warm_pool.put(warm_pool.get()))
    listener = CheckoutListener()
    warm_pool.add_listener(listener)
    calls = count_calls(lambda: warm_pool.put(warm_pool.get()))
    assert listener.heard == 2
    extra = calls - without
    assert extra == Counter(
        {
            "listeners.py:emit": 2,  # one per event heard, and its getattr of the methods
            "C:getattr": 2,
            "test_hot_path.py:on_checkout": 1,
            "test_hot_path.py:on_checkin": 1,
        }
    ), dict(extra)
