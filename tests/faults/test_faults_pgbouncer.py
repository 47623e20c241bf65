"""The pool behind pgbouncer in transaction mode (matrix F17), in front of the private
PostgreSQL: plain use, PAUSE/RESUME, server connections killed, and PostgreSQL down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

from .pgdrivers import load, pg_params
from .servers import PgBouncer, PrivatePostgres
from .support import BackgroundCall, closed_as_dead, elapsed, query_ok, serves, wait_until

PoolFactory = Callable[..., ConnectionPool]

#: psycopg 3 must not prepare statements behind pgbouncer < 1.21 in transaction mode.
DRIVER_EXTRA: dict[str, dict[str, Any]] = {"psycopg": {"prepare_threshold": None}}


def bouncer_pool(
    make_pool: PoolFactory, driver: str, bouncer: PgBouncer, **settings: Any
) -> ConnectionPool:
    """Make a pool of ``driver`` connections to ``appdb`` through pgbouncer."""
    kwargs = bouncer.kwargs(**DRIVER_EXTRA.get(driver, {}))
    return make_pool(load(driver), **settings, **kwargs)


def hammer(pool: ConnectionPool, threads: int, rounds: int) -> list[BackgroundCall]:
    """Start ``threads`` callers running ``rounds`` transactions each."""

    def work() -> int:
        for n in range(rounds):
            assert query_ok(pool, f"SELECT {n}") == n
        return rounds

    return [BackgroundCall(work) for _ in range(threads)]


def server_pids(pgbouncer: PgBouncer) -> set[int]:
    """Return the PostgreSQL pids of pgbouncer's server connections."""
    return {row["remote_pid"] for row in pgbouncer.show("SERVERS")}


@pytest.mark.parametrize("driver", pg_params("psycopg2", "psycopg"))
def test_f17_pool_works_through_pgbouncer_transaction_mode(
    driver: str, pgbouncer: PgBouncer, pg: PrivatePostgres, make_pool: PoolFactory
) -> None:
    """Four threads run 25 transactions each through the pool and pgbouncer: all succeed,
    nothing is closed, and PostgreSQL sees no more than pgbouncer's pool size."""
    pool = bouncer_pool(make_pool, driver, pgbouncer, max_size=4)
    for call in hammer(pool, threads=4, rounds=25):
        assert call.join(60).error is None
    assert pool.stats().closed_total == 0
    assert len(pg.backend_pids_all()) <= 5  # default_pool_size
    pools = {row["database"]: row for row in pgbouncer.show("POOLS")}
    assert pools[pgbouncer.dbname]["pool_mode"] == "transaction"


@pytest.mark.postgres
def test_f17_pause_makes_checkouts_and_queries_wait_then_proceed(
    pgbouncer: PgBouncer, make_pool: PoolFactory
) -> None:
    """PAUSE: get() still hands out connections (a connect to pgbouncer completes), but
    statements wait; after RESUME they complete with their results, and the pool closed
    nothing."""
    pool = bouncer_pool(make_pool, "psycopg2", pgbouncer, max_size=3)
    assert query_ok(pool) == 1
    pgbouncer.pause()
    try:
        calls = [BackgroundCall(query_ok, pool, f"SELECT {n}", 30) for n in range(3)]
        assert wait_until(lambda: pool.stats().in_use == 3, 10)
        for call in calls:
            assert not call.wait(1.0)
        waiting = sum(row["cl_waiting"] for row in pgbouncer.show("POOLS"))
        assert waiting == 3
    finally:
        pgbouncer.resume()
    assert [call.join(30).result for call in calls] == [0, 1, 2]
    assert all(call.duration >= 1.0 for call in calls)
    assert pool.stats().closed_total == 0


@pytest.mark.postgres
def test_f17_killed_server_connections_are_hidden_by_pgbouncer(
    pgbouncer: PgBouncer, pg: PrivatePostgres, make_pool: PoolFactory
) -> None:
    """pg_terminate_backend on pgbouncer's server connections: pgbouncer replaces them;
    the pool's client connections stay good and its next statement succeeds."""
    pool = bouncer_pool(make_pool, "psycopg2", pgbouncer, max_size=2)
    before = query_ok(pool, "SELECT pg_backend_pid()")
    killed = pg.kill_backends()
    assert before in killed
    # pgbouncer drops a killed server connection when it reads the server's goodbye; a
    # query that comes first may be linked to the dying one, and pgbouncer then closes
    # the client (1 failure in ~3 runs of the fault suite, even with server_check_delay
    # = 0): wait for pgbouncer's own list of server connections to lose them.
    assert wait_until(lambda: not killed & server_pids(pgbouncer), 15)
    after = query_ok(pool, "SELECT pg_backend_pid()")
    assert after != before
    assert pool.stats().closed_total == 0


@pytest.mark.postgres
def test_f17_postgres_down_behind_pgbouncer(
    pgbouncer: PgBouncer, pg: PrivatePostgres, make_pool: PoolFactory
) -> None:
    """PostgreSQL stopped behind pgbouncer: get() succeeds (pgbouncer accepts logins),
    the statement waits query_wait_timeout and fails with the driver's error, and the
    pool closes that connection; once PostgreSQL is back, the pool serves by itself."""
    psycopg2 = load("psycopg2")
    pool = bouncer_pool(make_pool, "psycopg2", pgbouncer, max_size=2)
    assert query_ok(pool) == 1
    pgbouncer.admin("SET query_wait_timeout = 2")
    pg.stop()
    try:
        with elapsed() as took, pytest.raises(psycopg2.OperationalError):
            query_ok(pool)
        assert 1.5 <= took[0] < 20
        assert closed_as_dead(pool) == 1
        assert pool.stats().unreachable == 0  # connects still succeed: only a query tells
    finally:
        pg.start()
        pgbouncer.admin(f"SET query_wait_timeout = {pgbouncer.query_wait_timeout}")
    assert wait_until(lambda: serves(pool, psycopg2.Error), 30)
