"""Runtime control of ConnectionPool on the fake driver: resize, drain, pause, check,
keepalive, open/wait_ready, wait_closed, and clear errors for bad requests.

The core's decisions are specified in tests/core/test_control.py; these tests check that
the blocking front-end carries them out (closes done before the call returns, waiters
woken, the worker's keepalive pings), and are the model for the real-server tests in
tests/integration/test_runtime.py and the green ones in tests/green/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool, DriverProfile, register_profile
from dbapi_pool._drivers.base import select_one
from dbapi_pool.errors import PoolClosed, PoolError, PoolTimeout
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError

register_profile(
    DriverProfile(
        name="fakedb_control",
        ping=select_one,
        is_broken=lambda conn: bool(conn.closed),  # a killed one is found by the ping
    )
)


def control_db(**knobs: Any) -> FakeDatabase:
    return FakeDatabase(name="fakedb_control", **knobs)


def pings(db: FakeDatabase) -> int:
    return sum(1 for _, method, args in db.log if method == "execute" and args[0] == "SELECT 1")


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def idle_pool(db: FakeDatabase, count: int, **settings: Any) -> ConnectionPool:
    pool = ConnectionPool(db, name="control", **settings)
    held = [pool.get() for _ in range(count)]
    for conn in held:
        pool.put(conn)
    return pool


# -- resize --------------------------------------------------------------------------------


def test_resize_down_closes_surplus_idle_connections_before_returning() -> None:
    db = control_db()
    with idle_pool(db, 4, max_size=4) as pool:
        pool.resize(max_size=2)
        assert db.closes == 2
        assert (pool.config.max_size, pool.stats().size) == (2, 2)
        assert pool.stats().closes["resized"] == 2


def test_resize_down_closes_checked_out_connections_when_they_come_back() -> None:
    db = control_db()
    with ConnectionPool(db, max_size=2) as pool:
        held = [pool.get(), pool.get()]
        pool.resize(max_size=1)
        assert db.closes == 0
        pool.put(held[0])
        assert db.connections[0].closed
        pool.put(held[1])
        assert pool.stats().size == 1 and not db.connections[1].closed


def test_resize_up_serves_a_waiting_caller_at_once() -> None:
    db = control_db()
    with ConnectionPool(db, max_size=1) as pool:
        held = pool.get()
        thread, outcome = in_thread(lambda: pool.get(timeout=10))
        assert eventually(lambda: pool.stats().waiting == 1)
        pool.resize(max_size=2)
        thread.join(10)
        assert outcome and outcome[0].raw is db.connections[1]
        pool.put(outcome[0])
        pool.put(held)


def test_resize_up_of_min_size_opens_the_missing_connections() -> None:
    db = control_db()
    with ConnectionPool(db, max_size=4, max_connecting=4) as pool:
        pool.resize(min_size=3)
        assert db.connects == 3 and pool.stats().idle == 3
        pool.wait_ready(timeout=10)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"max_size": -1}, "max_size"),
        ({"min_size": -1}, "min_size"),
        ({"min_size": 5}, "min_size"),  # above max_size=4
        ({}, "min_size or max_size"),
    ],
)
def test_resize_refuses_bad_sizes_naming_the_setting(sizes: dict[str, int], message: str) -> None:
    with ConnectionPool(control_db(), max_size=4) as pool:
        with pytest.raises(ValueError, match=message):
            pool.resize(**sizes)
        assert pool.config.max_size == 4


def test_resize_of_a_closed_pool_raises_pool_closed() -> None:
    pool = ConnectionPool(control_db())
    pool.close()
    with pytest.raises(PoolClosed):
        pool.resize(max_size=2)


# -- drain ---------------------------------------------------------------------------------


def test_drain_closes_idle_connections_before_returning() -> None:
    db = control_db()
    with idle_pool(db, 2) as pool:
        pool.drain()
        assert db.closes == 2 and pool.stats().closes["drained"] == 2


def test_drain_replaces_a_checked_out_connection_when_it_comes_back() -> None:
    db = control_db()
    with ConnectionPool(db) as pool:
        old = pool.get()
        pool.drain()
        pool.put(old)
        assert db.connections[0].closed
        conn = pool.get()
        assert conn.raw is db.connections[1]
        pool.put(conn)


def test_drain_refills_min_size_with_new_connections() -> None:
    db = control_db()
    with ConnectionPool(db, min_size=2, max_size=4) as pool:
        pool.drain()
        assert db.closes == 2
        assert eventually(lambda: pool.stats().idle == 2)
        assert all(not c.closed for c in db.connections[2:4])


def test_drain_of_a_closed_pool_raises_pool_closed() -> None:
    pool = ConnectionPool(control_db())
    pool.close()
    with pytest.raises(PoolClosed, match="'fakedb_control|control|is closed"):
        pool.drain()


# -- pause, resume -------------------------------------------------------------------------


def test_a_paused_pool_makes_checkouts_wait_and_closes_nothing() -> None:
    db = control_db()
    with idle_pool(db, 1) as pool:
        pool.pause()
        assert pool.paused
        with pytest.raises(PoolTimeout):
            pool.get(timeout=0.05)
        assert db.closes == 0 and pool.stats().idle == 1


def test_resume_serves_the_callers_that_waited() -> None:
    db = control_db()
    with idle_pool(db, 1) as pool:
        pool.pause()
        thread, outcome = in_thread(lambda: pool.get(timeout=10))
        assert eventually(lambda: pool.stats().waiting == 1)
        pool.resume()
        thread.join(10)
        assert outcome and outcome[0].raw is db.connections[0]
        pool.put(outcome[0])


def test_pausing_twice_is_an_error() -> None:
    with ConnectionPool(control_db()) as pool:
        pool.pause()
        with pytest.raises(PoolError, match="already paused"):
            pool.pause()


def test_resume_of_a_running_pool_is_an_error() -> None:
    with ConnectionPool(control_db()) as pool:
        with pytest.raises(PoolError, match="not paused"):
            pool.resume()


def test_pause_of_a_closed_pool_raises_pool_closed() -> None:
    pool = ConnectionPool(control_db())
    pool.close()
    with pytest.raises(PoolClosed):
        pool.pause()


# -- check, keepalive ----------------------------------------------------------------------


def test_check_replaces_dead_idle_connections_and_counts_them() -> None:
    db = control_db()
    with idle_pool(db, 3, min_size=0) as pool:
        db.connections[1].kill()
        assert pool.check() == 1
        assert db.connections[1].closed and pool.stats().idle == 2
        assert pool.stats().closes["failed_check"] == 1
        assert pings(db) == 2  # the live ones (the dead one's ping raised)


def test_check_refills_min_size_after_a_dead_connection() -> None:
    db = control_db()
    with ConnectionPool(db, min_size=2) as pool:
        db.connections[0].kill()
        assert pool.check() == 1
        assert eventually(lambda: pool.stats().idle == 2)


def test_check_leaves_connections_in_use_alone() -> None:
    db = control_db()
    with ConnectionPool(db) as pool:
        held = pool.get()
        db.connections[0].kill()
        assert pool.check() == 0
        with pytest.raises(OperationalError):
            held.cursor().execute("SELECT 1")
        pool.put(held)


def test_keepalive_pings_quiet_idle_connections_and_replaces_dead_ones() -> None:
    db = control_db()
    with idle_pool(db, 1, min_size=1, keepalive=0.02, max_idle=None) as pool:
        assert eventually(lambda: pings(db) >= 2)
        db.connections[0].kill()
        assert eventually(lambda: pool.stats().closes["failed_check"] == 1)
        assert eventually(lambda: pool.stats().idle == 1)


def test_keepalive_does_not_ping_a_paused_pool() -> None:
    db = control_db()
    with idle_pool(db, 1, keepalive=0.01, max_idle=None) as pool:
        pool.pause()
        before = pings(db)
        time.sleep(0.1)
        assert pings(db) == before


# -- readiness and closing -----------------------------------------------------------------


def test_open_with_wait_returns_once_min_size_connections_are_open() -> None:
    db = control_db(connect_delay=0.02)
    with ConnectionPool(db, min_size=4, max_connecting=1) as pool:
        pool.open(wait=True, timeout=10)
        assert pool.stats().size - pool.stats().connecting >= 4


def test_wait_ready_raises_after_the_timeout_with_the_last_connect_error() -> None:
    db = control_db(fail_connects=1000)
    with ConnectionPool(db, min_size=1) as pool:
        with pytest.raises(PoolTimeout, match="0 of min_size=1") as caught:
            pool.wait_ready(timeout=0.2)
        assert isinstance(caught.value.__cause__, OperationalError)


def test_open_of_a_closed_pool_raises_pool_closed() -> None:
    pool = ConnectionPool(control_db())
    pool.close()
    with pytest.raises(PoolClosed):
        pool.open(wait=True)


def test_wait_closed_returns_once_the_checked_out_connections_are_closed() -> None:
    db = control_db()
    pool = ConnectionPool(db)
    held = pool.get()
    pool.close()
    assert not pool.wait_closed(timeout=0.01)
    pool.put(held)
    assert pool.wait_closed(timeout=10) and db.connections[0].closed


def test_wait_closed_of_an_open_pool_is_an_error() -> None:
    with ConnectionPool(control_db()) as pool:
        with pytest.raises(PoolError, match="before close"):
            pool.wait_closed()


def test_a_connection_closed_on_return_below_min_size_is_replaced_in_the_background() -> None:
    db = FakeDatabase()
    pool = ConnectionPool(db, min_size=2, max_size=2, max_idle=None, max_age=None)
    try:
        conn = pool.get()
        conn._entry.broken = True  # failed with a "dead" error: closed on return
        pool.put(conn)
        assert eventually(lambda: pool.stats().idle == 2)
        assert pool.stats().closes["broken"] == 1
    finally:
        pool.close()
