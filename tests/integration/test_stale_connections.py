"""Sessions the server ended while their connections sat idle in the pool (issue 11,
defect 2): such a connection is never lent, however recently it was used.

Every driver that exposes its socket (psycopg2, psycopg, pg8000, MySQLdb, PyMySQL) has
it probed at each checkout; a socket with something to read (the server's goodbye, then
EOF) earns a ping, which fails, and ``get()`` hands out a new session instead. The tests
run on the thread pool and the asyncio pool, and on green pools through
``tests/green/stale_green.py``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool, ConnectionPool, PoolStats
from dbapi_pool._drivers.base import socket_readable

from .support import (
    NETWORK_DRIVERS,
    POSTGRES,
    Database,
    calls_beside_a_gil_waiter,
    driver_params,
    wait_until,
)

#: A window far longer than any test: before the fix, a connection used within it was
#: lent unchecked, so the kill below was always inside it.
LONG_WINDOW = 60.0

SESSION_SQL = {POSTGRES: "SELECT pg_backend_pid()"}
GREEN_SCRIPT = Path(__file__).parent.parent / "green" / "stale_green.py"


class SyncFlavour:
    """Check out sessions from a ``ConnectionPool``."""

    def __init__(self, dbenv: Database, **settings: Any) -> None:
        self.dbenv = dbenv
        self.pool: ConnectionPool = dbenv.make_pool(**settings)

    def session(self) -> Any:
        """Check out a connection, return the session id its first query reads."""
        with self.pool.connection(timeout=15) as conn:
            return self.dbenv.session_id(conn)

    def stats(self) -> PoolStats:
        return self.pool.stats()

    def close(self) -> None:
        self.pool.close()


class AsyncFlavour:
    """Check out sessions from an ``AsyncConnectionPool``, on one event loop."""

    def __init__(self, dbenv: Database, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        kwargs = dbenv.connect_kwargs(dbenv.new_marker())
        self.pool = AsyncConnectionPool(dbenv.module, **kwargs, **settings)
        self.sql = SESSION_SQL.get(dbenv.server, "SELECT CONNECTION_ID()")

    async def _session(self) -> Any:
        async with self.pool.connection(timeout=15) as conn:
            cur = await conn.execute(self.sql)
            row = await cur.fetchone()
            await cur.close()
            return row[0]

    def session(self) -> Any:
        """Check out a connection, return the session id its first query reads."""
        return self.loop.run_until_complete(self._session())

    def stats(self) -> PoolStats:
        return self.pool.stats()

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.pool.close())
        finally:
            self.loop.close()


FLAVOURS = {"sync": SyncFlavour, "asyncio": AsyncFlavour}


@pytest.fixture(params=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest, dbenv: Database) -> Iterator[Any]:
    """A pool of ``dbenv``'s driver, of one flavour; ``check_idle_after`` = LONG_WINDOW."""
    made = FLAVOURS[request.param](dbenv, max_size=2, check_idle_after=LONG_WINDOW)
    try:
        yield made
    finally:
        made.close()


def end_session(dbenv: Database, session: Any) -> None:
    """End a session from the monitoring connection, as an operator would."""
    if dbenv.server == POSTGRES:
        (row,) = dbenv.monitor_query("SELECT pg_terminate_backend(%s)", [int(session)])
        assert row[0] is True
    else:
        dbenv.monitor_execute(f"KILL {int(session)}")


def sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


@pytest.mark.parametrize("dbenv", driver_params(*NETWORK_DRIVERS), indirect=True)
def test_session_ended_by_the_server_after_return_is_not_lent(
    dbenv: Database, flavour: Any
) -> None:
    """Killed about 0.3 s after its return (well within check_idle_after), the session
    is not lent: the first query of the next checkout runs on a new session, and the
    stats count the dead one as failing its check."""
    old = flavour.session()
    returned = time.monotonic()
    end_session(dbenv, old)
    assert dbenv.wait_gone([old], timeout=10)
    sleep_until(returned + 0.3)
    new = flavour.session()
    assert new != old
    stats = flavour.stats()
    assert stats.closes["failed_check"] == 1
    assert (stats.size, stats.idle, stats.in_use) == (1, 1, 0)
    assert dbenv.alive_count([new]) == 1


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("mode", ["gevent-patched", "eventlet-patched", "gevent", "eventlet"])
def test_green_pool_does_not_lend_a_session_ended_after_return(mode: str) -> None:
    """The same, through green pools (a subprocess each: patching cannot be undone),
    offloaded or not as each driver's cooperation decides."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(GREEN_SCRIPT), mode],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    assert [r["driver"] for r in results] == list(NETWORK_DRIVERS)
    for result in results:
        assert result["gone"], result
        assert result.get("replaced") is True and result["failed_check"] == 1, result


@pytest.mark.parametrize("dbenv", driver_params(*NETWORK_DRIVERS), indirect=True)
def test_live_session_returned_just_now_is_lent_again(dbenv: Database, flavour: Any) -> None:
    """The probe at every checkout costs no session: a healthy connection is reused."""
    first = flavour.session()
    assert [flavour.session() for _ in range(3)] == [first] * 3
    assert flavour.stats().closes["failed_check"] == 0


@pytest.mark.parametrize("dbenv", driver_params("psycopg2"), indirect=True)
def test_live_session_with_something_to_read_is_pinged_and_kept(dbenv: Database) -> None:
    """A notification waiting on an idle session makes its socket readable too: the ping
    that follows reads it (psycopg2 queues it in ``notifies``) and succeeds, and the
    session is lent again."""
    pool = dbenv.make_pool(max_size=1, check_idle_after=LONG_WINDOW)
    channel = f"ch_{uuid.uuid4().hex[:12]}"
    with pool.connection() as conn:
        old = dbenv.session_id(conn)
        conn.cursor().execute(f"LISTEN {channel}")
        fd = conn.raw.fileno()
    dbenv.monitor_execute(f"NOTIFY {channel}")
    assert wait_until(lambda: socket_readable(fd), 10)
    with pool.connection() as conn:
        assert [n.channel for n in conn.raw.notifies] == [channel]
        assert dbenv.session_id(conn) == old
    assert pool.stats().closes["failed_check"] == 0


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "pymysql"), indirect=True)
def test_socket_probe_keeps_the_gil(dbenv: Database) -> None:
    """The probe runs at every checkout: had it let the GIL go (as select() does), each
    checkout would wait to take it back behind the other threads. Without forced
    switches, another thread that gives the GIL up at once runs only when this one lets
    it go: it must not run at all during ten thousand probes (select() let it run about
    once every hundred)."""
    pool = dbenv.make_pool(max_size=1)
    conn = pool.get()
    fileno = pool.profile.fileno
    assert fileno is not None
    fd = fileno(conn.raw)
    assert socket_readable(fd) is False  # the first call sets the probe up (imports)
    try:
        answers, during = calls_beside_a_gil_waiter(lambda: socket_readable(fd), 10_000)
    finally:
        pool.put(conn)
    assert answers == {False}
    assert during == 0
