"""Connecting: connect_timeout against a server that never answers, and driver errors."""

from __future__ import annotations

import gc
import time

import pytest

from dbapi_pool.errors import ConnectTimeout, PoolError

from .support import Blackhole, Database, free_port, wait_until


# pg8000 does not close its socket when the server hangs up during its handshake; the
# socket is found by the collector (below), so that the warning lands in this test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <socket\.socket:pytest.PytestUnraisableExceptionWarning"
)
def test_connect_timeout_against_a_silent_server(net_dbenv: Database, blackhole: Blackhole) -> None:
    pool = net_dbenv.make_pool(
        connect={"host": "127.0.0.1", "port": blackhole.port}, connect_timeout=0.5
    )
    start = time.monotonic()
    with pytest.raises(ConnectTimeout) as info:
        pool.get()
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 5.0, f"get() gave up after {elapsed:.2f} s"
    assert pool.name in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert pool.stats().connect_timeouts == 1
    assert blackhole.accepted, "the driver never reached the listener"
    # The late connect may hold its slot until the driver gives up (no assertion on how
    # long); once the listener hangs up, the driver fails and the slot must come back.
    blackhole.close()
    assert wait_until(lambda: pool.stats().size == 0, timeout=15.0), pool.stats()
    assert pool.stats().connecting == 0
    gc.collect()


def test_connect_error_propagates_unchanged_and_frees_the_slot(net_dbenv: Database) -> None:
    expected = net_dbenv.spec.resolve(net_dbenv.spec.refused_error or "")
    pool = net_dbenv.make_pool(
        connect={"host": "127.0.0.1", "port": free_port()}, max_size=1, timeout=2
    )
    for attempt in (1, 2):  # a leaked slot would make the second get() a PoolTimeout
        with pytest.raises(Exception) as info:
            pool.get()
        assert isinstance(info.value, expected), f"attempt {attempt}: {info.value!r}"
        assert not isinstance(info.value, PoolError)
        assert type(info.value).__module__.split(".")[0] == net_dbenv.module.__name__
        stats = pool.stats()
        assert (stats.size, stats.connecting, stats.in_use) == (0, 0, 0)
        # The second caller either connects again (past the backoff) or fails fast with a
        # copy of the driver's error while the pool backs off: one or the other.
        assert stats.connect_failures + stats.unreachable == attempt
