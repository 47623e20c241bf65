"""The core's timing histograms and holders, with a scripted clock and no threads."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dbapi_pool._core import BOUNDS, CONNECT, Entry, PoolState, TimingStats
from dbapi_pool._core.timings import Histogram
from dbapi_pool.config import PoolConfig


def make_state(**settings: Any) -> PoolState:
    return PoolState(PoolConfig.build("core", **settings), rng=lambda: 0.0)


def test_bounds_are_four_per_decade_from_1us_to_1000s() -> None:
    assert len(BOUNDS) == 37
    assert BOUNDS[0] == pytest.approx(1e-6) and BOUNDS[-1] == pytest.approx(1000.0)
    assert all(b / a == pytest.approx(10**0.25) for a, b in itertools.pairwise(BOUNDS))


def test_a_value_lands_in_the_first_bucket_whose_bound_is_not_below_it() -> None:
    histogram = Histogram()
    for value in (0.0, BOUNDS[0], BOUNDS[10], BOUNDS[10] * 1.0001, 5000.0):
        histogram.record(value)
    timing = histogram.snapshot()
    assert timing.counts[0] == 2  # 0 and exactly the first bound (le)
    assert timing.counts[10] == 1 and timing.counts[11] == 1
    assert timing.counts[-1] == 1  # above the last bound
    assert timing.count == 5
    assert timing.sum == pytest.approx(BOUNDS[0] + BOUNDS[10] * 2.0001 + 5000.0)
    assert timing.cumulative()[-1] == (float("inf"), 5)


def test_percentiles_are_estimated_inside_their_bucket() -> None:
    histogram = Histogram()
    for _ in range(98):
        histogram.record(0.001)  # 1 ms
    histogram.record(0.1)
    histogram.record(0.1)
    timing = histogram.snapshot()
    lower, upper = 10**-3.25, 10**-3.0
    assert lower < timing.p50 <= upper  # type: ignore[operator]
    assert timing.p99 is not None and 10**-1.25 < timing.p99 <= 0.1
    assert TimingStats().p50 is None and TimingStats().mean is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        timing.percentile(99)


def test_zero_waits_are_counted_from_the_checkouts() -> None:
    state = make_state(max_size=1)
    assert state.checkout(0.0) is CONNECT
    entry = state.connected(object(), 0.5, started=0.0)
    assert isinstance(entry, Entry)
    state.waited(0.5)  # the caller's connect: a wait of its own
    state.checkin(entry, 2.5)
    for t in (3.0, 4.0):
        again = state.checkout(t)  # at once: waited 0
        assert again is entry
        state.checkin(entry, t + 0.25)
    stats = state.snapshot()
    assert stats.checkouts == 3
    assert stats.wait_time.count == 3 and stats.wait_time.counts[0] == 2
    assert stats.use_time.count == 3 and stats.use_time.sum == pytest.approx(2.0 + 0.25 * 2)
    assert stats.create_time.count == 1 and stats.create_time.sum == pytest.approx(0.5)


def test_holders_and_the_timeout_message_name_the_oldest_first() -> None:
    state = make_state(max_size=2)
    entries = []
    for t in (0.0, 1.0):
        assert state.checkout(t) is CONNECT
        entry = state.connected(object(), t)
        assert entry is not None
        entry.holder, entry.tag = 12345, f"job-{t:g}"
        entries.append(entry)
    holders = state.holders(10.0)
    assert [h.tag for h in holders] == ["job-0", "job-1"]
    assert [h.held_for for h in holders] == [10.0, 9.0]
    assert holders[0].holder == "thread 12345" and holders[0].site == "?"
    message = str(state.timeout_error(2.0, 10.0))
    assert "held by #" in message and message.index("[job-0]") < message.index("[job-1]")
    state.checkin(entries[0], 11.0)
    assert [h.tag for h in state.holders(12.0)] == ["job-1"]
