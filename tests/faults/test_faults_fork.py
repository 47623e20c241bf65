"""Fork after the pool has connections (matrix F14), on the private servers.

DESIGN's decision: the child starts with an empty pool and never uses or closes the
parent's connections; the parent goes on with its own. The child here uses the inherited
pool (a new session), returns the parent's checked-out connection, closes the pool, lets
the garbage collector run, and leaves with ``os._exit``; it reports through a pipe. The
parent then checks that its sessions (by backend pid / CONNECTION_ID) are the same and
still answer.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

from .adapters import ServerAdapter, on_servers
from .pgdrivers import load, pg_kwargs
from .servers import PrivatePostgres
from .support import scalar, wait_until

PoolFactory = Callable[..., ConnectionPool]
#: How long the parent waits for its child.
CHILD_BOUND = 30.0


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``work()`` in a forked child and return what it reported (or its error)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(int(CHILD_BOUND))
        try:
            result = work()
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        try:
            os.write(write_end, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        _wait_child(pid)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
    finally:
        _reap(pid)
    assert data, "the child reported nothing"
    report: dict[str, Any] = json.loads(data)
    return report


def _wait_child(pid: int) -> None:
    deadline = time.monotonic() + CHILD_BOUND
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"the forked child did not finish within {CHILD_BOUND:g} s")


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def child_uses_inherited_pool(pool: ConnectionPool, held: Any, sql: str) -> dict[str, Any]:
    """In the child: get a connection, return the parent's, close the pool, collect."""
    stats = pool.stats()
    conn = pool.get(timeout=10)
    fresh = int(scalar(conn, sql))
    pool.put(conn)
    pool.put(held)  # the parent's checked-out connection
    pool.close()
    gc.collect()
    return {"fresh": fresh, "size_at_start": stats.size}


def parent_still_served(pool: ConnectionPool, held: Any, sql: str, sessions: set[int]) -> None:
    """In the parent: the held connection and the idle one are the same live sessions."""
    assert int(scalar(held, sql)) in sessions
    pool.put(held)
    conns = [pool.get(timeout=10) for _ in range(2)]
    assert {int(scalar(conn, sql)) for conn in conns} == sessions
    for conn in conns:
        pool.put(conn)
    assert pool.stats().closed_total == 0


def fork_scenario(pool: ConnectionPool, sql: str) -> tuple[set[int], dict[str, Any]]:
    """Hold one connection and keep one idle, fork, and run the child's part."""
    held = pool.get(timeout=15)
    idle = pool.get(timeout=15)
    sessions = {int(scalar(held, sql)), int(scalar(idle, sql))}
    held.commit()
    pool.put(idle)
    report = in_child(lambda: child_uses_inherited_pool(pool, held, sql))
    parent_still_served(pool, held, sql, sessions)
    return sessions, report


@on_servers(mariadb=("pymysql",))
def test_f14_child_starts_empty_and_parent_sessions_survive(
    db: ServerAdapter, make_pool: PoolFactory
) -> None:
    """The child's pool starts empty and opens its own session; the parent's two sessions
    are neither used nor closed by the child (on MariaDB, a child's COM_QUIT on an
    inherited socket would end the parent's session), and the child's own session ends
    with it."""
    pool = db.pool(make_pool, max_size=3)
    sessions, report = fork_scenario(pool, db.session_sql)
    assert "error" not in report, report["error"]
    assert report["size_at_start"] == 0
    assert report["fresh"] not in sessions
    assert wait_until(lambda: db.sessions() == sessions, 15)


@pytest.mark.postgres
def test_f14_child_with_a_new_pool_leaves_the_parent_alone(
    pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    """The recommended pattern: the child makes its own pool and leaves with os._exit."""
    psycopg2 = load("psycopg2")
    kwargs = pg_kwargs("psycopg2", pg.kwargs(), app_name)
    pool = make_pool(psycopg2, max_size=2, **kwargs)
    conn = pool.get(timeout=15)
    pid = int(scalar(conn, "SELECT pg_backend_pid()"))
    pool.put(conn)

    def child() -> dict[str, Any]:
        with ConnectionPool(psycopg2, max_size=1, **kwargs) as own:
            with own.connection() as mine:
                return {"fresh": int(scalar(mine, "SELECT pg_backend_pid()"))}

    report = in_child(child)
    assert "error" not in report, report["error"]
    assert report["fresh"] != pid
    with pool.connection() as conn:
        assert int(scalar(conn, "SELECT pg_backend_pid()")) == pid
