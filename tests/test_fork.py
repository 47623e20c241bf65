"""Fork: the child starts with an empty pool and never uses or closes the parent's
connections; the parent goes on using them (DESIGN: decisions, "Fork")."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.testing.fakedb import FakeDatabase

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(check: Any) -> int:
    """Run ``check()`` in a forked child; return its exit status (0: all assertions held)."""
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status only
        code = 1
        try:
            check()
            code = 0
        except BaseException as exc:
            sys.stderr.write(f"child failed: {exc!r}\n")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_starts_empty_and_leaves_the_parents_connections_alone() -> None:
    db = FakeDatabase()
    pool = ConnectionPool(db, max_size=2)
    held = pool.get()
    idle = pool.get()
    pool.put(idle)

    def child() -> None:
        stats = pool.stats()
        assert (stats.size, stats.idle, stats.in_use) == (0, 0, 0), stats
        pool.put(held)  # the parent's: detached, not closed, not counted
        assert pool.stats().size == 0
        fresh = pool.get()
        assert fresh.raw is not held and fresh.raw not in db.connections[:2]
        pool.put(fresh)
        gc.collect()
        assert not any(c.closed for c in db.connections[:2]), "closed a parent's connection"

    assert in_child(child) == 0
    assert not any(c.closed for c in db.connections)
    held.cursor().execute("SELECT 1")
    pool.put(held)
    assert pool.stats().idle == 2
    pool.close()


@pytest.mark.postgres
def test_parents_postgres_session_survives_a_child_that_drops_the_pool() -> None:
    psycopg2 = pytest.importorskip("psycopg2")
    pool = ConnectionPool(psycopg2, host="127.0.0.1", user="postgres", dbname="test")
    conn = pool.get()
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    (pid,) = cur.fetchone()
    pool.put(conn)

    def child() -> None:
        pool.close()  # closes nothing inherited: the pool is empty in the child
        gc.collect()

    assert in_child(child) == 0
    conn = pool.get()
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    assert cur.fetchone()[0] == pid  # the same session, still alive
    pool.put(conn)
    pool.close()
