"""Runtime control on the real servers, OS threads: sessions counted on the server.

close(), drain() and resize() return only once the sessions they close are gone from the
server (issue 11, defect 1): on PostgreSQL that is checked at once after the call (a
backend leaves pg_stat_activity before it closes its socket, which the pool waits for).
MariaDB closes the socket a moment before it drops the session from PROCESSLIST, so
there the count is polled (documented in the README).
"""

from __future__ import annotations

from typing import Any

import pytest

from dbapi_pool.errors import PoolTimeout

from .support import POSTGRES, Database, driver_params, wait_until


def sessions_of(db: Database, pool: Any, count: int) -> list[Any]:
    """Check out ``count`` connections, note their sessions, return them all."""
    held = [pool.get() for _ in range(count)]
    sessions = [db.session_id(conn) for conn in held]
    for conn in held:
        pool.put(conn)
    return sessions


def assert_gone(db: Database, sessions: list[Any]) -> None:
    if db.server == POSTGRES:
        assert db.alive_count(sessions) == 0  # at once: the call waited for the server
    else:
        assert db.wait_gone(sessions)


def kill(db: Database, session: Any) -> None:
    if db.server == POSTGRES:
        db.monitor_query("SELECT pg_terminate_backend(%s)", [int(session)])
    else:
        db.monitor_execute(f"KILL {int(session)}")
    assert db.wait_gone([session])


@pytest.mark.parametrize("dbenv", driver_params("psycopg2"), indirect=True)
def test_close_returns_after_the_server_ended_every_idle_session(dbenv: Database) -> None:
    # Defect 1: without the wait, one session of three was still listed in most rounds.
    for _ in range(10):
        pool = dbenv.make_pool()
        sessions = sessions_of(dbenv, pool, 3)
        pool.close()
        assert dbenv.alive_count(sessions) == 0


def test_close_ends_the_idle_sessions(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool()
    sessions = sessions_of(net_dbenv, pool, 3)
    pool.close()
    assert_gone(net_dbenv, sessions)


def test_drain_ends_idle_sessions_now_and_checked_out_ones_on_return(
    net_dbenv: Database,
) -> None:
    pool = net_dbenv.make_pool()
    idle = sessions_of(net_dbenv, pool, 2)
    held = pool.get()
    held_session = net_dbenv.session_id(held)
    idle.remove(held_session)
    pool.drain()
    assert_gone(net_dbenv, idle)
    assert net_dbenv.is_alive(held_session)
    pool.put(held)
    assert_gone(net_dbenv, [held_session])
    with pool.connection() as conn:
        assert net_dbenv.session_id(conn) not in (*idle, held_session)


def test_resize_down_ends_the_surplus_sessions(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(max_size=3)
    sessions = sessions_of(net_dbenv, pool, 3)
    pool.resize(max_size=1)
    assert pool.stats().closes["resized"] == 2
    kept = [s for s in sessions if net_dbenv.is_alive(s)]
    assert len(kept) == 1
    assert_gone(net_dbenv, [s for s in sessions if s not in kept])


def test_resize_up_of_min_size_opens_sessions(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(max_size=4)
    pool.resize(min_size=2)
    pool.wait_ready(timeout=30)
    assert len(sessions_of(net_dbenv, pool, 2)) == 2
    assert pool.stats().connects == 2


def test_pause_keeps_sessions_open_and_resume_serves(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(max_size=1)
    (session,) = sessions_of(net_dbenv, pool, 1)
    pool.pause()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=0.1)
    assert net_dbenv.is_alive(session)
    pool.resume()
    with pool.connection() as conn:
        assert net_dbenv.session_id(conn) == session


def test_check_replaces_a_session_the_server_killed(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(min_size=2, max_size=2)
    pool.wait_ready(timeout=30)
    sessions = sessions_of(net_dbenv, pool, 2)
    kill(net_dbenv, sessions[0])
    assert pool.check() == 1
    pool.wait_ready(timeout=30)
    assert net_dbenv.is_alive(sessions[1])
    assert pool.stats().closes["failed_check"] == 1


def test_keepalive_finds_a_killed_idle_session(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(min_size=1, max_size=1, keepalive=0.05, max_idle=None)
    pool.wait_ready(timeout=30)
    (session,) = sessions_of(net_dbenv, pool, 1)
    kill(net_dbenv, session)
    assert wait_until(lambda: pool.stats().closes["failed_check"] == 1, timeout=30)
    pool.wait_ready(timeout=30)
    with pool.connection() as conn:
        assert net_dbenv.session_id(conn) != session


def test_open_with_wait_opens_min_size_sessions(net_dbenv: Database) -> None:
    pool = net_dbenv.make_pool(min_size=3, max_size=3, max_connecting=1)
    pool.open(wait=True, timeout=30)
    assert pool.stats().idle == 3
    if net_dbenv.server == POSTGRES:
        assert net_dbenv.marker_count(pool.test_marker) == 3  # type: ignore[attr-defined]
