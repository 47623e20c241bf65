"""The pool's behaviour, as seen by its callers, on the fake driver with real threads.

Written once and run on every flavour (``make_pool`` comes from this folder's conftest):
the threaded ConnectionPool and the AsyncConnectionPool behind a blocking facade. Each
test is one rule. Waits are bounded generously; nothing asserts on speed.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from contract_flavours import GREEN_FLAVOUR, RUNTIME

from dbapi_pool import (
    ConnectionPool,
    ConnectionReleased,
    ConnectTimeout,
    ForeignConnection,
    PoolClosed,
    PoolTimeout,
    TooManyWaiters,
)
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError

MakePool = Callable[..., Any]
threads_only = pytest.mark.parametrize("flavour", ["threads"], indirect=True)


def in_thread(fn: Callable[[], Any]) -> tuple[Any, list[Any]]:
    """Run ``fn`` concurrently (a thread, or a green thread); the list gets its outcome."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    return RUNTIME.spawn(run), outcome


def join(handle: Any, timeout: float = 5) -> None:
    RUNTIME.join(handle, timeout)


def sleep(seconds: float) -> None:
    RUNTIME.sleep(seconds)


def wait_for_waiters(pool: Any, count: int) -> None:
    deadline = time.monotonic() + 5
    while pool.stats().waiting < count:
        assert time.monotonic() < deadline, "waiters never queued"
        sleep(0.001)


# -- reuse and the proxy -----------------------------------------------------------------


def test_returned_connection_is_reused(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    first = pool.get()
    raw = first.raw
    pool.put(first)
    second = pool.get()
    assert second.raw is raw
    assert db.connects == 1


@threads_only
def test_proxy_delegates_to_the_driver_connection(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    assert cur.fetchone() == (1,)
    conn.custom_flag = True
    assert conn.raw.custom_flag is True


def test_returned_proxy_refuses_every_use(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    pool.put(conn)
    with pytest.raises(ConnectionReleased, match="returned to pool 'test'"):
        conn.cursor()
    with pytest.raises(ConnectionReleased):
        _ = conn.raw
    assert conn.released


@threads_only
def test_returned_proxy_refuses_attribute_changes(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    pool.put(conn)
    with pytest.raises(ConnectionReleased):
        conn.autocommit = True


def test_second_put_of_the_same_proxy_changes_nothing(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db)
    conn = pool.get()
    pool.put(conn)
    before = pool.stats()
    pool.put(conn)
    assert pool.stats() == before
    assert before.idle == 1


def test_closing_the_proxy_returns_it(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    conn.close()
    conn.close()
    assert pool.stats().idle == 1
    assert not db.connections[0].closed


def test_proxy_of_another_pool_is_refused(db: FakeDatabase, make_pool: MakePool) -> None:
    pool, other = make_pool(db), make_pool(db, name="other")
    conn = other.get()
    with pytest.raises(ForeignConnection, match="pool 'other'"):
        pool.put(conn)
    assert other.stats().in_use == 1


def test_raw_driver_connection_is_refused(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    with pytest.raises(ForeignConnection, match="FakeConnection"):
        pool.put(db.connect())


# -- reset on return ---------------------------------------------------------------------


def test_put_rolls_back(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    conn.cursor().execute("INSERT INTO t VALUES (1)")
    pool.put(conn)
    assert db.connections[0].rollbacks == 1
    assert not db.connections[0].in_transaction


def test_failed_reset_closes_the_connection(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    conn = pool.get()
    conn.raw.kill()
    pool.put(conn)
    stats = pool.stats()
    assert (stats.size, stats.closes["reset_failed"]) == (0, 1)
    assert db.connections[0].closed


def test_reset_none_skips_the_rollback(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, reset=None)
    pool.put(pool.get())
    assert db.connections[0].rollbacks == 0


def test_reset_callable_runs_on_the_driver_connection(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    seen = []
    pool = make_pool(db, reset=seen.append)
    conn = pool.get()
    raw = conn.raw
    pool.put(conn)
    assert seen == [raw]


# -- connection() ------------------------------------------------------------------------


def test_connection_block_commits_and_returns(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    with pool.connection() as conn:
        conn.cursor().execute("INSERT INTO t VALUES (1)")
    raw = db.connections[0]
    assert (raw.commits, pool.stats().idle) == (1, 1)


def test_connection_block_rolls_back_on_an_exception(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    with pytest.raises(KeyError), pool.connection() as conn:
        conn.cursor().execute("INSERT INTO t VALUES (1)")
        raise KeyError("boom")
    raw = db.connections[0]
    assert (raw.commits, raw.in_transaction, pool.stats().idle) == (0, False, 1)


def test_connection_block_keeps_the_callers_exception_when_rollback_fails(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db)
    with pytest.raises(KeyError), pool.connection() as conn:
        conn.raw.kill()
        raise KeyError("boom")
    assert pool.stats().size == 0  # the dead connection failed its reset and was closed


# -- waiting -----------------------------------------------------------------------------


def test_get_times_out_with_the_pool_name_and_counts(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1, name="orders")
    held = pool.get()
    started = time.monotonic()
    with pytest.raises(PoolTimeout) as caught:
        pool.get(timeout=0.05)
    assert time.monotonic() - started >= 0.04
    message = str(caught.value)
    assert "'orders'" in message and "in_use=1" in message and "max=1" in message
    assert pool.stats().timeouts == 1
    assert pool.stats().waiting == 0
    pool.put(held)


def test_waiters_time_out_each_at_its_own_deadline(db: FakeDatabase, make_pool: MakePool) -> None:
    # Green and async pools time their waiters out from one timer, not one per wait: a
    # later waiter with a shorter timeout must still go first, and a patient one must
    # neither be timed out early nor miss the connection returned afterwards.
    pool = make_pool(db, max_size=1)
    held = pool.get()
    patient, patient_got = in_thread(lambda: pool.get(timeout=30))
    wait_for_waiters(pool, 1)
    hasty, hasty_got = in_thread(lambda: pool.get(timeout=0.3))
    wait_for_waiters(pool, 2)
    hastier, hastier_got = in_thread(lambda: pool.get(timeout=0.1))
    join(hastier)
    assert len(hastier_got) == 1 and isinstance(hastier_got[0], PoolTimeout)
    assert not hasty_got  # its deadline is later
    join(hasty)
    assert len(hasty_got) == 1 and isinstance(hasty_got[0], PoolTimeout)
    assert not patient_got and pool.stats().waiting == 1
    pool.put(held)
    join(patient)
    assert len(patient_got) == 1 and not isinstance(patient_got[0], BaseException)
    pool.put(patient_got[0])
    stats = pool.stats()
    assert (stats.timeouts, stats.waiting, stats.idle) == (2, 0, 1)


def test_get_nowait_refuses_at_once_when_full(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1, timeout=30)
    held = pool.get()
    started = time.monotonic()
    with pytest.raises(PoolTimeout):
        pool.get_nowait()
    assert time.monotonic() - started < 5
    pool.put(held)


def test_get_nowait_takes_an_idle_connection(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1)
    pool.put(pool.get())
    conn = pool.get_nowait()
    assert conn.raw is db.connections[0]
    pool.put(conn)


def test_get_nowait_opens_a_connection_below_max_size(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    # Alike in every flavour (issue 11): the async one connects too (it is awaited).
    pool = make_pool(db, max_size=1)
    pool.put(pool.get_nowait())
    assert db.connects == 1


@threads_only  # the async pool closes the expired one in its thread: the slot comes later
def test_get_nowait_replaces_an_expired_idle_connection_of_a_full_pool(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=1, max_age=0.01, max_idle=None)
    pool.put(pool.get())
    sleep(0.02)
    conn = pool.get_nowait()
    assert conn.raw is db.connections[1]
    assert db.connections[0].closed
    assert pool.stats().closes["max_age"] == 1


# -- the timeout argument of get() (issue 11) ----------------------------------------------


def test_get_with_infinite_timeout_waits_without_limit(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    # OS threads raised OverflowError: lock.acquire() refuses an infinite timeout (strict
    # order: the waiter goes straight to that wait, not through the hand-off window).
    pool = make_pool(db, max_size=1, handoff_after=0)
    held = pool.get()
    thread, outcome = in_thread(lambda: pool.get(timeout=math.inf))
    wait_for_waiters(pool, 1)
    pool.put(held)
    join(thread)
    assert len(outcome) == 1 and outcome[0].raw is db.connections[0]
    pool.put(outcome[0])


@pytest.mark.parametrize("timeout", ["5", b"5", True, [5]])
def test_get_refuses_a_timeout_that_is_not_a_number(
    db: FakeDatabase, make_pool: MakePool, timeout: Any
) -> None:
    pool = make_pool(db)
    with pytest.raises(TypeError, match=r"pool 'test': the timeout argument of get\(\) must be"):
        pool.get(timeout=timeout)
    assert pool.stats().checkouts == 0


@pytest.mark.parametrize("timeout", [-1, -0.5, math.nan])
def test_get_refuses_a_negative_timeout(
    db: FakeDatabase, make_pool: MakePool, timeout: float
) -> None:
    # -1 used to be a silent PoolTimeout once the pool was full.
    pool = make_pool(db, max_size=1)
    held = pool.get()
    with pytest.raises(
        ValueError, match=r"pool 'test': the timeout argument of get\(\) must be >= 0"
    ):
        pool.get(timeout=timeout)
    pool.put(held)


def test_get_timeout_none_means_the_pools_timeout(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1, timeout=0.05)
    held = pool.get()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=None)
    pool.put(held)


def test_waiter_is_woken_by_put(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1)
    conn = pool.get()
    raw = conn.raw
    thread, outcome = in_thread(lambda: pool.get(timeout=5))
    wait_for_waiters(pool, 1)
    pool.put(conn)
    join(thread)
    assert outcome[0].raw is raw


def test_waiters_are_served_first_come_first_served(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1)
    conn = pool.get()
    served: list[int] = []

    def take(i: int) -> None:
        got = pool.get(timeout=5)
        served.append(i)
        pool.put(got)

    threads = []
    for i in range(4):
        threads.append(in_thread(lambda i=i: take(i))[0])  # type: ignore[misc]
        wait_for_waiters(pool, i + 1)
    pool.put(conn)
    for thread in threads:
        join(thread)
    assert served == [0, 1, 2, 3]


def test_pool_keeps_strict_order_by_default(db: FakeDatabase, make_pool: MakePool) -> None:
    # Issue 11, defect 3: OS threads had a 5 ms hand-off window by default, which doubled
    # the p99 latency; every flavour is now first come, first served unless asked otherwise.
    assert make_pool(db).config.handoff_after == 0


def test_connection_returned_while_a_caller_waits_is_not_taken_back(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=1)
    conn = pool.get()
    raw = conn.raw
    thread, outcome = in_thread(lambda: pool.get(timeout=5))
    wait_for_waiters(pool, 1)
    pool.put(conn)
    with pytest.raises(PoolTimeout):
        pool.get_nowait()  # it went to the waiter, however briefly that one waited
    join(thread)
    assert outcome[0].raw is raw


@threads_only
def test_every_thread_is_served_when_threads_outnumber_connections(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=2, reset=None)
    counts = [0] * 8
    stop = time.monotonic() + 0.5

    # Monkey-patched, these threads are green: one that never blocks never lets another
    # run (the hub schedules cooperatively, whatever the pool does), so each worker yields
    # once a cycle, as green code doing any I/O would. OS threads are preempted: no yield.
    cooperative = (GREEN_FLAVOUR or "").endswith("-patched")

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            pool.put(pool.get(timeout=5))
            counts[i] += 1
            if cooperative:
                time.sleep(0)  # patched: a green yield

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(counts), counts  # nobody starved
    assert pool.stats().waiting == 0


def test_max_waiting_refuses_the_extra_caller(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1, max_waiting=1)
    conn = pool.get()
    thread, _ = in_thread(lambda: pool.get(timeout=5))
    wait_for_waiters(pool, 1)
    with pytest.raises(TooManyWaiters):
        pool.get(timeout=5)
    pool.put(conn)
    join(thread)


# -- connecting --------------------------------------------------------------------------


def test_connect_error_propagates_unchanged_and_frees_the_slot(
    make_pool: MakePool,
) -> None:
    db = FakeDatabase(fail_connects=1)
    pool = make_pool(db, max_size=1, reconnect_min=0.01, reconnect_max=0.01)
    with pytest.raises(OperationalError, match="connection refused"):
        pool.get()
    assert pool.stats().size == 0
    assert pool.stats().connect_failures == 1
    sleep(0.05)  # past the backoff: the next caller tries again
    pool.put(pool.get())


def test_callers_fail_fast_while_connects_fail_then_the_pool_recovers(
    make_pool: MakePool,
) -> None:
    db = FakeDatabase(connect_error=OperationalError("fakedb: connection refused"))
    pool = make_pool(db, max_size=4, reconnect_min=0.5, reconnect_max=0.5)
    with pytest.raises(OperationalError):
        pool.get()
    attempts = db.connect_attempts
    started = time.monotonic()
    for _ in range(5):
        with pytest.raises(OperationalError) as caught:
            pool.get(timeout=5)
        assert "'test': the database is unreachable" in "".join(
            getattr(caught.value, "__notes__", [str(caught.value)])
        )
    assert time.monotonic() - started < 1.0  # fast, not each a full timeout
    assert db.connect_attempts == attempts  # and no connect storm
    assert pool.stats().unreachable == 5
    db.connect_error = None
    sleep(0.6)
    pool.put(pool.get())
    assert pool.stats().idle == 1


def test_waiter_fails_fast_when_the_connect_before_it_fails(make_pool: MakePool) -> None:
    db = FakeDatabase(fail_connects=1, connect_delay=0.2)
    pool = make_pool(db, max_size=1)
    first, first_outcome = in_thread(lambda: pool.get(timeout=5))
    wait_deadline = time.monotonic() + 5
    while db.connect_attempts == 0 and time.monotonic() < wait_deadline:
        sleep(0.001)
    second, second_outcome = in_thread(lambda: pool.get(timeout=5))
    join(first)
    join(second)
    assert isinstance(first_outcome[0], OperationalError)
    assert isinstance(second_outcome[0], OperationalError)  # the driver's class
    assert pool.stats().size == 0


def test_connect_timeout_raises_and_the_late_connection_is_closed(
    make_pool: MakePool, eventually: Callable[..., bool]
) -> None:
    db = FakeDatabase(connect_delay=0.3)
    pool = make_pool(db, max_size=1, connect_timeout=0.05)
    started = time.monotonic()
    with pytest.raises(ConnectTimeout, match="connect_timeout=0.05"):
        pool.get()
    assert time.monotonic() - started < 0.3
    assert eventually(lambda: pool.stats().size == 0)
    stats = pool.stats()
    assert (stats.connect_timeouts, stats.closes["late_connect"]) == (1, 1)
    assert db.connections[0].closed


def test_min_size_connections_open_at_construction(make_pool: MakePool) -> None:
    db = FakeDatabase()
    pool = make_pool(db, min_size=2, max_size=4)
    assert (db.connects, pool.stats().idle) == (2, 2)


def test_threadsafety_zero_module_is_refused(make_pool: MakePool) -> None:
    with pytest.raises(ValueError, match="threadsafety = 0"):
        make_pool(FakeDatabase(threadsafety=0))


def test_object_without_connect_is_refused(make_pool: MakePool) -> None:
    with pytest.raises(TypeError, match="not a DB-API 2.0 module"):
        make_pool(object())


# -- closing on return and the idle timer ------------------------------------------------


@pytest.mark.parametrize("setting", ["max_idle", "max_age"])
def test_zero_closes_on_every_return(db: FakeDatabase, make_pool: MakePool, setting: str) -> None:
    pool = make_pool(db, **{setting: 0})
    pool.put(pool.get())
    assert db.connections[0].closed
    assert pool.stats().closes["close_on_return"] == 1


def test_idle_timer_closes_without_further_calls(
    db: FakeDatabase, make_pool: MakePool, eventually: Callable[..., bool]
) -> None:
    pool = make_pool(db, max_idle=0.1)
    pool.put(pool.get())
    # The worker closes the connection, then records the close: wait for both (reading the
    # count right after the driver's close() raced the worker).
    assert eventually(lambda: db.connections[0].closed and pool.stats().closes["max_idle"] == 1)


def test_idle_timer_keeps_min_size(
    db: FakeDatabase, make_pool: MakePool, eventually: Callable[..., bool]
) -> None:
    pool = make_pool(db, min_size=1, max_size=3, max_idle=0.1)
    a, b = pool.get(), pool.get()
    pool.put(a)
    pool.put(b)
    assert eventually(lambda: pool.stats().closes["max_idle"] == 1)
    sleep(0.2)
    assert pool.stats().size == 1


def test_idle_timer_refills_to_min_size(
    make_pool: MakePool, eventually: Callable[..., bool]
) -> None:
    db = FakeDatabase()
    pool = make_pool(db, min_size=1, max_idle=0.05)
    conn = pool.get()
    conn.raw.kill()
    pool.put(conn)  # the reset fails: closed, below min_size
    assert eventually(lambda: pool.stats().idle == 1)
    assert db.connects == 2


def test_threaded_pool_is_collected_and_its_worker_stops(eventually: Callable[..., bool]) -> None:
    db = FakeDatabase()
    pool = ConnectionPool(db, max_idle=60)
    pool.put(pool.get())
    worker = pool._worker
    assert worker is not None
    del pool
    gc.collect()
    worker.join(5)
    assert not worker.alive


# -- closing the pool --------------------------------------------------------------------


def test_close_fails_waiters(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1)
    held = pool.get()
    thread, outcome = in_thread(lambda: pool.get(timeout=5))
    wait_for_waiters(pool, 1)
    pool.close()
    join(thread)
    assert isinstance(outcome[0], PoolClosed)
    pool.put(held)


def test_close_closes_idle_now_and_checked_out_on_return(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=2)
    held, idle = pool.get(), pool.get()
    pool.put(idle)
    pool.close()
    assert [c.closed for c in db.connections] == [False, True]
    pool.put(held)
    assert [c.closed for c in db.connections] == [True, True]
    assert pool.stats().closes["pool_closed"] == 2


def test_get_after_close_raises(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    pool.close()
    with pytest.raises(PoolClosed, match="'test' is closed"):
        pool.get()


def test_pool_as_context_manager_closes(db: FakeDatabase, make_pool: MakePool) -> None:
    with make_pool(db) as pool:
        pool.put(pool.get())
    assert pool.closed
    assert db.connections[0].closed


# -- lost proxies ------------------------------------------------------------------------


def test_collected_proxy_is_closed_and_its_slot_freed(
    db: FakeDatabase, make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(db, max_size=1)
    pool.get()  # dropped at once
    gc.collect()
    with caplog.at_level(logging.WARNING, logger="dbapi_pool"):
        conn = pool.get(timeout=1)
    assert db.connections[0].closed
    assert conn.raw is db.connections[1]
    assert pool.stats().closes["abandoned"] == 1
    assert "garbage-collected without put()" in caplog.text


# -- what is shown -----------------------------------------------------------------------


def test_repr_shows_the_counts(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=3, name="orders")
    conn = pool.get()
    pool.put(pool.get())
    assert repr(pool).endswith("ConnectionPool 'orders' idle=1 in_use=1 waiting=0 max=3>")
    assert "PooledConnection #" in repr(conn)


def test_password_never_shows(make_pool: MakePool, caplog: pytest.LogCaptureFixture) -> None:
    db = FakeDatabase()
    with caplog.at_level(logging.DEBUG, logger="dbapi_pool"):
        pool = make_pool(
            db, max_size=1, host="h", password="s3cret-pw", passwd="s3cret-pw", name=None
        )
        conn = pool.get()
        with pytest.raises(PoolTimeout) as caught:
            pool.get(timeout=0)
        shown = [repr(pool), str(pool), repr(conn), str(caught.value), repr(pool.stats())]
        pool.close()
    assert db.connections[0].kwargs["password"] == "s3cret-pw"
    assert not any("s3cret" in text for text in [*shown, caplog.text])


def test_stats_snapshot_is_frozen(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    stats = pool.stats()
    with pytest.raises(AttributeError):
        stats.idle = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        stats.closes["max_idle"] = 3  # type: ignore[index]
