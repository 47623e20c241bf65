"""Faults only the private PostgreSQL has, or only its drivers meet: sessions killed
with checks off or under load, idle and statement timeouts, stalled logins, leaks,
reset hooks, connections returned broken or mid-stream, rotated passwords (matrix F2-F5,
F12, F15, F16, F18).

The scenarios both servers share (restarts, killed sessions, outages...) are written once
in test_faults_servers.py; how the pool checks idle connections is described there.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.errors import ConnectTimeout

from .adapters import ServerAdapter, fill_idle, on_servers
from .pgdrivers import load, pg_kwargs, pg_params, pid_of
from .servers import PrivatePostgres
from .support import (
    BackgroundCall,
    attempts_until_ok,
    closed_as_dead,
    elapsed,
    query_ok,
    report,
    scalar,
    wait_until,
)

PoolFactory = Callable[..., ConnectionPool]


# -- F2: backend killed ----------------------------------------------------------------


# pg8000 is left out: a statement sent to a session that just died sometimes earns it a
# bare ConnectionResetError, which the pool does not count as a disconnect (see F8).
@pytest.mark.parametrize("driver", pg_params("psycopg2", "psycopg"))
def test_f2_killed_backend_trusted_unchecked_fails_one_caller(
    driver: str, pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """A session killed while idle is lent as is when checks are off
    (check_idle_after=None): the borrower gets the driver's error, once; the connection
    is closed on return and the next borrower gets a new session."""
    module = load(driver)
    kwargs = pg_kwargs(driver, pg.kwargs(), app_name)
    pool = make_pool(module, max_size=2, check_idle_after=None, **kwargs)
    (old,) = fill_idle(pool, 1, pid_of)
    assert len(pg.kill_backends(app_name)) == 1
    assert wait_until(lambda: pg.count_connections(app_name) == 0, 15)
    assert attempts_until_ok(pool, module.Error, limit=3) == 1
    assert pool.stats().closes["broken"] == 1
    with pool.connection(timeout=15) as conn:
        assert pid_of(conn) != old
    assert pool.stats().size == 1


@pytest.mark.postgres
def test_f2_killing_every_session_under_load_never_exceeds_max_size(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """Kill the pool's sessions repeatedly while 4 threads query: errors reach callers,
    the server never sees more than max_size sessions, and the pool serves afterwards."""
    psycopg2 = load("psycopg2")
    pool = make_pool(psycopg2, max_size=3, **pg_kwargs("psycopg2", pg.kwargs(), app_name))
    stop = time.monotonic() + 3.0
    outcomes: list[str] = []

    def worker() -> None:
        for _ in range(2000):
            if time.monotonic() > stop:
                return
            try:
                query_ok(pool, "SELECT count(*) FROM pg_class")
                outcomes.append("ok")
            except psycopg2.Error:
                outcomes.append("error")

    workers = [BackgroundCall(worker) for _ in range(4)]
    peak = 0
    killed: set[int] = set()
    for _ in range(60):
        if time.monotonic() > stop:
            break
        # Sessions already terminated may linger a moment on the server: not counted.
        peak = max(peak, len(pg.backend_pids(app_name) - killed))
        killed |= pg.kill_backends(app_name)
        time.sleep(0.1)
    for call in workers:
        assert call.join(30).error is None
    report(
        "F2 kills under load (4 threads, 3 s)",
        f"{len(killed)} sessions killed; {Counter(outcomes)}; peak live sessions {peak}",
    )
    assert 1 <= peak <= 3
    assert "ok" in outcomes
    assert query_ok(pool) == 1
    stats = pool.stats()
    assert stats.size <= 3 and stats.in_use == 0
    assert pg.count_connections(app_name) <= 3


# -- F3: server idle timeouts ----------------------------------------------------------


@pytest.mark.postgres
def test_f3_pool_max_idle_below_the_server_timeout_avoids_the_failure(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """With max_idle under the server's idle_session_timeout the pool retires the idle
    connection first: no statement ever fails."""
    psycopg2 = load("psycopg2")
    kwargs = pg_kwargs("psycopg2", pg.kwargs(), app_name, options="-c idle_session_timeout=1500")
    pool = make_pool(psycopg2, max_size=2, max_idle=0.3, **kwargs)
    fill_idle(pool, 1, pid_of)
    assert wait_until(lambda: pool.stats().closes["max_idle"] == 1, 15)
    time.sleep(2.0)  # past the server's limit
    assert attempts_until_ok(pool, psycopg2.Error, limit=3) == 0
    assert pool.stats().closes["reset_failed"] == 0


# -- F4: cancelled statements ----------------------------------------------------------


@pytest.mark.parametrize("driver", pg_params("psycopg2", "psycopg"))
def test_f4_statement_timeout_keeps_its_connection(
    driver: str, pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """A statement_timeout error goes to the caller; the connection stays in the pool."""
    module = load(driver)
    kwargs = pg_kwargs(driver, pg.kwargs(), app_name, options="-c statement_timeout=200")
    pool = make_pool(module, max_size=1, **kwargs)
    with pool.connection() as conn:
        pid = pid_of(conn)
    with pytest.raises(module.Error, match="statement timeout"):
        with pool.connection() as conn:
            scalar(conn, "SELECT pg_sleep(5)")
    with pool.connection() as conn:
        assert pid_of(conn) == pid
    assert pool.stats().closed_total == 0


# -- F5: logins that never complete ----------------------------------------------------


@pytest.mark.postgres
def test_f5_stalled_login_raises_connect_timeout_and_frees_the_slot(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """pre_auth_delay: get() raises ConnectTimeout at connect_timeout while another caller
    is served from an idle connection meanwhile; the slot comes back once libpq gives up
    (the pool passes it ceil(1.5) = 2 s)."""
    psycopg2 = load("psycopg2")
    pool = make_pool(
        psycopg2, max_size=3, connect_timeout=1.5, **pg_kwargs("psycopg2", pg.kwargs(), app_name)
    )
    held = pool.get(timeout=15)
    pg.set_pre_auth_delay(4)
    stuck = BackgroundCall(pool.get, 30)
    assert wait_until(lambda: pool.stats().connecting == 1, 10)
    pool.put(held)
    with elapsed() as served:  # the idle connection is not stuck behind the connect
        assert query_ok(pool) == 1
    assert isinstance(stuck.join(30).error, ConnectTimeout)
    assert 1.4 <= stuck.duration < 15
    assert served[0] < stuck.duration
    stats = pool.stats()
    assert (stats.connect_timeouts, stats.connect_failures) == (1, 0)
    assert wait_until(lambda: pool.stats().size == 1 and pool.stats().connecting == 0, 20)
    pg.set_pre_auth_delay(0)
    assert query_ok(pool) == 1


@pytest.mark.postgres
def test_f5_whole_second_connect_timeout_still_raises_connect_timeout(
    pg: PrivatePostgres, app_name: str
) -> None:
    """connect_timeout=1 against a stalled login must raise ConnectTimeout, every time.

    POOL BUG (today): the profile hands libpq connect_timeout=ceil(1) = 1, the same
    deadline as the pool's own; libpq 17 honours 1 s, so the two race and get() often
    raises psycopg2.OperationalError('timeout expired') instead (and counts it as a
    failed connect, so the next callers fail fast as if the database were down).
    Eight pools try at once; each must get ConnectTimeout.
    """
    psycopg2 = load("psycopg2")
    pools = [
        ConnectionPool(
            psycopg2, max_size=1, connect_timeout=1, **pg_kwargs("psycopg2", pg.kwargs(), app_name)
        )
        for _ in range(8)
    ]
    try:
        pg.set_pre_auth_delay(3)
        calls = [BackgroundCall(pool.get, 30) for pool in pools]
        kinds = [type(call.join(30).error).__name__ for call in calls]
    finally:
        for pool in pools:
            pool.close(timeout=10)
    report("F5 connect_timeout=1 (the driver gets 2) (8 stalled gets)", sorted(kinds))
    assert kinds == ["ConnectTimeout"] * 8


# -- F12: a leaked connection ----------------------------------------------------------


@pytest.mark.postgres
def test_f12_collected_proxy_closes_its_session_and_frees_the_slot(
    pg: PrivatePostgres,
    make_pool: PoolFactory,
    app_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy garbage-collected without put(): a WARNING names the pool, the session is
    closed on the server (not reused), and the slot serves the next caller."""
    psycopg2 = load("psycopg2")
    pool = make_pool(
        psycopg2, max_size=1, name="leaky", **pg_kwargs("psycopg2", pg.kwargs(), app_name)
    )
    conn = pool.get(timeout=15)
    old = pid_of(conn)
    caplog.set_level(logging.WARNING, logger="dbapi_pool")
    del conn
    gc.collect()
    assert wait_until(lambda: pool.stats().closes["abandoned"] == 1, 15)
    assert wait_until(lambda: pg.backend_pids(app_name) == set(), 15)
    assert any(
        "garbage-collected" in r.getMessage() and "leaky" in r.getMessage() for r in caplog.records
    )
    with pool.connection(timeout=15) as again:
        assert pid_of(again) != old
    assert pool.stats().size == 1


@pytest.mark.postgres
def test_f12_leak_timeout_names_the_borrower(
    pg: PrivatePostgres,
    make_pool: PoolFactory,
    app_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A checkout held past leak_timeout is reported once, with the borrower's stack
    (this test's own frame), and counted in stats.leaks; the connection stays usable."""
    psycopg2 = load("psycopg2")
    kwargs = pg_kwargs("psycopg2", pg.kwargs(), app_name)
    pool = make_pool(psycopg2, max_size=1, leak_timeout=0.3, **kwargs)
    caplog.set_level(logging.WARNING, logger="dbapi_pool")
    conn = pool.get(timeout=15)
    assert wait_until(lambda: pool.stats().leaks == 1, 15)
    time.sleep(0.5)  # reported once, not at every maintenance run
    assert pool.stats().leaks == 1
    leak_logs = [r.getMessage() for r in caplog.records if "leak_timeout" in r.getMessage()]
    assert len(leak_logs) == 1
    assert "test_f12_leak_timeout_names_the_borrower" in leak_logs[0]
    assert scalar(conn, "SELECT 1") == 1
    pool.put(conn)


# -- F15: session state across checkouts -----------------------------------------------


def fail_reset(conn: Any) -> None:
    """A reset hook that always fails."""
    raise RuntimeError("reset refused")


@pytest.mark.postgres
def test_f15_default_reset_is_rollback_only_so_session_settings_carry_over(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """Today's default reset is a rollback: a committed SET survives into the next checkout
    (documented; a fuller default reset would change this)."""
    psycopg2 = load("psycopg2")
    pool = make_pool(psycopg2, max_size=1, **pg_kwargs("psycopg2", pg.kwargs(), app_name))
    with pool.connection() as conn:
        scalar(conn, "SELECT set_config('statement_timeout', '12345', false)")
    with pool.connection() as conn:
        assert scalar(conn, "SHOW statement_timeout") == "12345ms"


@pytest.mark.postgres
def test_f15_failing_reset_hook_discards_the_connection(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """A reset hook that raises: the connection is closed, never reused."""
    psycopg2 = load("psycopg2")
    kwargs = pg_kwargs("psycopg2", pg.kwargs(), app_name)
    pool = make_pool(psycopg2, max_size=1, reset=fail_reset, **kwargs)
    with pool.connection() as conn:
        pid = pid_of(conn)
    assert pool.stats().closes["reset_failed"] == 1
    assert wait_until(lambda: pid not in pg.backend_pids(app_name), 10)
    with pool.connection() as conn:
        assert pid_of(conn) != pid


# -- F16: connections returned in a bad state ------------------------------------------


@pytest.mark.parametrize("driver", pg_params())
def test_f16_returned_in_error_state_is_rolled_back_and_kept(
    driver: str, pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """A failed statement leaves the transaction aborted; the return rolls it back and the
    same session serves the next borrower."""
    module = load(driver)
    pool = make_pool(module, max_size=1, **pg_kwargs(driver, pg.kwargs(), app_name))
    conn = pool.get(timeout=15)
    pid = pid_of(conn)
    with pytest.raises(module.Error):
        scalar(conn, "SELECT 1 / 0")
    pool.put(conn)
    with pool.connection() as again:
        assert pid_of(again) == pid
        assert scalar(again, "SELECT 2") == 2
    assert pool.stats().closed_total == 0


@pytest.mark.parametrize("how", ["closed_by_user", "killed_while_out"])
@on_servers(mariadb=())
def test_f16_returned_broken_is_never_lent_again(
    db: ServerAdapter, how: str, make_pool: PoolFactory
) -> None:
    """A connection closed by its borrower, or whose session died while checked out, and
    then put() back: put() does not raise, the connection is closed (on return, or at the
    latest by the check before the next checkout) and the next borrower gets a new one."""
    pool = db.pool(make_pool, max_size=1)
    conn = pool.get(timeout=15)
    pid = db.session_of(conn)
    if how == "closed_by_user":
        conn.raw.close()
    else:
        db.kill(pid)
        with pytest.raises(db.dead_session_errors()):
            scalar(conn, "SELECT 1")
    pool.put(conn)
    with pool.connection(timeout=15) as again:
        assert db.session_of(again) != pid
    assert closed_as_dead(pool) == 1
    assert pool.stats().size == 1


@pytest.mark.postgres
def test_f16_psycopg_returned_mid_stream_does_not_hang_put(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """psycopg 3 returned while a streamed result is still open (status ACTIVE): put()
    must come back (the research matrix: close a connection returned while active) and
    the next borrower must get a usable connection.

    Today put() rolls back, and psycopg's rollback() waits for the connection's lock,
    which the open stream generator holds: put() blocks forever. The test closes the
    generator after a bound so that nothing stays stuck, then fails."""
    psycopg = load("psycopg")
    pool = make_pool(psycopg, max_size=1, **pg_kwargs("psycopg", pg.kwargs(), app_name))
    conn = pool.get(timeout=15)
    rows = conn.cursor().stream("SELECT generate_series(1, 100000)")
    assert next(rows) == (1,)
    put = BackgroundCall(pool.put, conn)
    hung = not put.wait(5)
    rows.close()  # releases the connection's lock: a hung put() can now finish
    put.join(30)
    assert not hung, "put() of a psycopg connection with an open stream blocked for 5 s"
    assert put.error is None
    assert query_ok(pool, "SELECT 3") == 3
    assert pool.stats().size == 1
    assert pg.count_connections(app_name) <= 1


# -- F18: credential rotation ----------------------------------------------------------


@pytest.mark.postgres
def test_f18_rotated_password_reaches_new_connections_without_a_restart(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """The role's password changes on the server: sessions already open keep working, a
    connect with the old password fails with the driver's error, and once connect_args
    returns the new one, new connections log in and old ones age out (max_age)."""
    psycopg2 = load("psycopg2")
    secret = ["pw-one"]
    pg.set_password(secret[0])
    kwargs = pg_kwargs("psycopg2", pg.kwargs(user=pg.password_role), app_name)
    pool = make_pool(
        psycopg2,
        max_size=2,
        max_age=1.5,
        reconnect_min=0.05,
        reconnect_max=0.2,
        connect_args=lambda: {"password": secret[0]},
        **kwargs,
    )
    held = pool.get(timeout=15)
    old = pid_of(held)
    pg.set_password("pw-two")
    assert pid_of(held) == old  # an open session is not logged out
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        pool.get(timeout=15)
    secret[0] = "pw-two"
    pool.put(held)
    assert wait_until(lambda: _fresh_pid(pool, psycopg2.Error, old), 20)
    assert pool.stats().closes["max_age"] >= 1


def _fresh_pid(pool: ConnectionPool, errors: type[BaseException], old: int) -> bool:
    try:
        with pool.connection(timeout=15) as conn:
            return pid_of(conn) != old
    except errors:
        return False
