"""Network faults between the pool and the private PostgreSQL, through a ChaosProxy:
listeners that never answer, stalls, resets, outages and latency (matrix F5, F7-F11).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.errors import ConnectTimeout, PoolError

from .chaosproxy import ChaosProxy
from .pgdrivers import load, pg_kwargs, pg_params, pid_of
from .servers import PrivatePostgres
from .support import (
    BackgroundCall,
    RoutedDriver,
    closed_as_dead,
    elapsed,
    query_ok,
    report,
    scalar,
    serves,
    wait_until,
)

PoolFactory = Callable[..., ConnectionPool]
ProxyFactory = Callable[[int], ChaosProxy]


def proxied_pool(
    make_pool: PoolFactory,
    driver: str,
    pg: PrivatePostgres,
    proxy: ChaosProxy,
    app_name: str,
    **settings: Any,
) -> ConnectionPool:
    """Make a pool whose connections all go through ``proxy``."""
    kwargs = pg_kwargs(driver, pg.kwargs(port=proxy.port), app_name)
    return make_pool(load(driver), **settings, **kwargs)


# -- F5: a listener that never accepts -------------------------------------------------


@pytest.mark.postgres
def test_f5_deaf_listener_raises_connect_timeout_while_idle_connections_serve(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """Connects hang (deaf listener): get() raises ConnectTimeout within its bound, the
    idle connection keeps serving meanwhile, the slot comes back when libpq gives up,
    and the pool connects again once the listener hears."""
    proxy = make_proxy(pg.port)
    pool = proxied_pool(make_pool, "psycopg2", pg, proxy, app_name, max_size=3, connect_timeout=1.5)
    held = pool.get(timeout=15)
    proxy.deaf()
    stuck = BackgroundCall(pool.get, 30)
    assert wait_until(lambda: pool.stats().connecting == 1, 10)
    pool.put(held)
    assert query_ok(pool) == 1  # served while the connect hangs
    assert isinstance(stuck.join(30).error, ConnectTimeout)
    assert 1.4 <= stuck.duration < 15
    assert wait_until(lambda: pool.stats().connecting == 0, 20)
    assert pool.stats().size == 1
    proxy.hear()
    conns = [pool.get(timeout=15) for _ in range(2)]  # the idle one and a new one
    for conn in conns:
        pool.put(conn)
    assert pool.stats().size == 2


# -- F7: a stalled server --------------------------------------------------------------


def stalled_first_connection(
    make_pool: PoolFactory, pg: PrivatePostgres, proxy: ChaosProxy, app_name: str
) -> ConnectionPool:
    """Make a pool whose first connection goes through ``proxy`` and the others direct."""
    psycopg2 = load("psycopg2")
    driver = RoutedDriver(psycopg2, lambda n: proxy.port if n == 0 else pg.port)
    return make_pool(driver, max_size=4, **pg_kwargs("psycopg2", pg.kwargs(), app_name))


def hammer(pool: ConnectionPool, threads: int, rounds: int) -> list[BackgroundCall]:
    """Start ``threads`` callers, each running ``rounds`` checkouts with a query."""

    def work() -> int:
        for _ in range(rounds):
            assert query_ok(pool, "SELECT 1", timeout=10) == 1
        return rounds

    return [BackgroundCall(work) for _ in range(threads)]


@pytest.mark.postgres
def test_f7_stalled_connection_does_not_stall_the_pool(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """One connection's server stops answering (proxy stall): its caller blocks, while
    other callers of the same pool go on through direct connections; after resume() the
    stalled call completes with its result and the connection is reused."""
    proxy = make_proxy(pg.port)
    pool = stalled_first_connection(make_pool, pg, proxy, app_name)
    slow = pool.get(timeout=15)
    assert proxy.connections_seen == 1
    slow_pid = pid_of(slow)
    proxy.stall()
    stuck = BackgroundCall(scalar, slow, "SELECT 42")
    for call in hammer(pool, threads=3, rounds=20):
        assert call.join(60).error is None
    assert not stuck.done
    stats = pool.stats()
    assert stats.in_use == 1 and stats.size <= 4
    proxy.resume()
    assert stuck.join(30).result == 42
    pool.put(slow)
    assert pool.stats().closed_total == 0
    assert proxy.connections_seen == 1
    assert slow_pid in pg.backend_pids(app_name)


@pytest.mark.postgres
def test_f7_pool_closes_promptly_while_a_connection_is_stalled(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """close() does not wait for a stalled checkout: idle connections close now, waiters
    get PoolClosed, and the stalled one is closed when its caller returns it."""
    proxy = make_proxy(pg.port)
    pool = stalled_first_connection(make_pool, pg, proxy, app_name)
    slow = pool.get(timeout=15)
    other = pool.get(timeout=15)
    pool.put(other)
    proxy.stall()
    stuck = BackgroundCall(scalar, slow, "SELECT 42")
    with elapsed() as took:
        pool.close(timeout=10)
    assert took[0] < 10
    assert not stuck.done
    assert pool.stats().closes["pool_closed"] == 1
    with pytest.raises(PoolError):
        pool.get(timeout=1)
    proxy.resume()
    assert stuck.join(30).result == 42
    pool.put(slow)
    assert pool.stats().closes["pool_closed"] == 2
    assert wait_until(lambda: pg.count_connections(app_name) == 0, 15)


# -- F8: connection reset mid-life -----------------------------------------------------


@pytest.mark.parametrize("driver", pg_params())
def test_f8_reset_mid_query_fails_the_caller_and_discards_the_connection(
    driver: str,
    pg: PrivatePostgres,
    make_pool: PoolFactory,
    make_proxy: ProxyFactory,
    app_name: str,
) -> None:
    """A TCP reset while a statement waits for its answer: the caller gets the driver's
    error at once (the pool does not retry it), the connection is closed on return, and
    the next caller, even within check_idle_after, gets a new working session.

    POOL BUG (pg8000, today): pg8000 raises a bare ConnectionResetError here; the pg8000
    profile's is_disconnect does not count it, and pg8000 has no is_broken, so the dead
    connection goes back on the idle stack and the next caller fails too.
    """
    proxy = make_proxy(pg.port)
    pool = proxied_pool(make_pool, driver, pg, proxy, app_name, max_size=1, check_idle_after=60)
    assert query_ok(pool) == 1
    proxy.stall()

    def doomed() -> Any:
        with pool.connection(timeout=10) as conn:
            return scalar(conn, "SELECT 1")

    call = BackgroundCall(doomed)
    time.sleep(0.3)  # the statement is on its way, held by the proxy
    assert proxy.cut_all(rst=True) == 1
    proxy.resume()
    call.join(30)
    assert call.error is not None and not isinstance(call.error, PoolError)
    report(f"F8 {driver}: error of a reset mid-query", type(call.error).__name__)
    assert proxy.connections_seen == 1  # no reconnect, no retry inside the failed call
    assert closed_as_dead(pool) == 1
    assert pool.stats().size == 0
    assert query_ok(pool) == 1
    assert proxy.connections_seen == 2


@pytest.mark.parametrize("driver", pg_params("psycopg2", "psycopg"))
def test_f8_reset_while_idle_is_caught_before_checkout(
    driver: str,
    pg: PrivatePostgres,
    make_pool: PoolFactory,
    make_proxy: ProxyFactory,
    app_name: str,
) -> None:
    """A reset on an idle connection makes its socket readable: the check before
    checkout replaces it, and the caller sees no error."""
    proxy = make_proxy(pg.port)
    pool = proxied_pool(make_pool, driver, pg, proxy, app_name, max_size=2, check_idle_after=0)
    assert query_ok(pool) == 1
    proxy.cut_all(rst=True)
    assert query_ok(pool) == 1
    assert pool.stats().closes["failed_check"] == 1


# -- F9 / F10: database down, connect storms -------------------------------------------


def storm(pool: ConnectionPool, seconds: float, threads: int) -> tuple[Counter[str], float]:
    """Call get() in a loop from ``threads`` threads for ``seconds``; count the outcomes
    and return the longest single get()."""
    outcomes: Counter[str] = Counter()
    longest = [0.0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop() -> None:
        for _ in range(100_000):
            if time.monotonic() >= stop:
                return
            started = time.monotonic()
            try:
                pool.put(pool.get(timeout=2))
                outcome = "ok"
            except Exception as exc:
                outcome = type(exc).__name__
                time.sleep(0.001)  # a caller that retries at once, as applications do
            with lock:
                outcomes[outcome] += 1
                longest[0] = max(longest[0], time.monotonic() - started)

    calls = [BackgroundCall(loop) for _ in range(threads)]
    for call in calls:
        assert call.join(seconds + 30).error is None
    return outcomes, longest[0]


@pytest.mark.postgres
def test_f10_outage_connect_storm_is_bounded(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """Database down for 2 s while 8 threads call get() in a loop: every call fails fast
    with the driver's error (fail-fast with backoff: one connect at a time), the proxy
    counts how many connects actually reached it, and the pool serves again by itself
    after the restart."""
    proxy = make_proxy(pg.port)
    pool = proxied_pool(make_pool, "psycopg2", pg, proxy, app_name, max_size=8, connect_timeout=2)
    assert query_ok(pool) == 1
    pool.close()  # a fresh pool: nothing idle to fall back on
    pool = proxied_pool(make_pool, "psycopg2", pg, proxy, app_name, max_size=8, connect_timeout=2)
    pg.stop()
    before = proxy.connections_seen
    try:
        outcomes, longest = storm(pool, seconds=2.0, threads=8)
    finally:
        pg.start()
    connects = proxy.connections_seen - before
    stats = pool.stats()
    report(
        "F10 outage 2 s, 8 threads calling get() in a loop",
        f"{connects} connects reached the proxy; outcomes {dict(outcomes)}; "
        f"connect_failures={stats.connect_failures} unreachable={stats.unreachable}; "
        f"longest get() {longest:.3f} s",
    )
    assert set(outcomes) == {"OperationalError"}
    assert longest < 10
    assert connects == stats.connect_failures
    assert connects < 100  # backoff: a few dozen at most, not one per call
    assert stats.unreachable > connects
    assert wait_until(lambda: serves(pool, load("psycopg2").Error), 30)


@pytest.mark.postgres
def test_f9_refused_connects_fail_fast_then_recover(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """Connects refused at once (no listener): get() raises the driver's error at once;
    once the listener is back, the pool connects again after its backoff."""
    proxy = make_proxy(pg.port)
    pool = proxied_pool(make_pool, "psycopg2", pg, proxy, app_name, max_size=2, connect_timeout=2)
    psycopg2 = load("psycopg2")
    proxy.refuse()
    for _ in range(3):
        with elapsed() as took, pytest.raises(psycopg2.OperationalError):
            pool.get(timeout=5)
        assert took[0] < 5
    proxy.accept()
    assert wait_until(lambda: serves(pool, psycopg2.Error), 30)
    assert proxy.connections_seen >= 1


# -- F11: latency ----------------------------------------------------------------------


@pytest.mark.postgres
def test_f11_latency_causes_no_false_dead_verdicts(
    pg: PrivatePostgres, make_pool: PoolFactory, make_proxy: ProxyFactory, app_name: str
) -> None:
    """With 100 ms added each way and a ping before every checkout, queries are slower
    but every one succeeds, no connection is judged dead, and connects stay under
    connect_timeout."""
    proxy = make_proxy(pg.port)
    proxy.set_latency(0.1)
    pool = proxied_pool(
        make_pool, "psycopg2", pg, proxy, app_name, max_size=2, pre_ping=True, connect_timeout=5
    )
    with elapsed() as took:
        for call in hammer(pool, threads=2, rounds=3):
            assert call.join(60).error is None
    stats = pool.stats()
    assert stats.closed_total == 0
    assert stats.connect_timeouts == 0
    assert took[0] >= 3 * 0.4  # each checkout: a ping and a query, 2 x 0.2 s round trips
