"""Runtime control with real drivers through a green pool: print one JSON line per case.

Usage: ``python runtime_scenarios.py MODE`` (``gevent-patched``, ``eventlet-patched``,
``gevent``, ``eventlet``). For psycopg2 (PostgreSQL) and PyMySQL and MySQLdb (MariaDB),
offloaded as "auto" decides, each case runs close, drain, resize, pause/resume, check,
keepalive and open(wait=True), counting sessions on the server from a monitoring
connection; test_runtime_green.py reads the results. ``*_left`` counts are taken at once
after the call on PostgreSQL; MariaDB drops a session from PROCESSLIST a moment after it
closes the socket, so there they are polled (up to 5 s).
"""

from __future__ import annotations

from greenmode import (  # monkey-patches: before every other import
    BACKEND,
    MODE,
    green_sleep,
    result_of,
    spawn,
)

# isort: split

import json
import time
from collections.abc import Callable
from typing import Any

import MySQLdb
import psycopg2
from green_drivers import DRIVERS, MY, PG

from dbapi_pool import ConnectionPool
from dbapi_pool.errors import PoolTimeout


class Server:
    """Count and kill sessions from a monitoring connection (a plain blocking one)."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        if postgres:
            self.conn = psycopg2.connect(**PG)
            self.conn.autocommit = True
        else:
            self.conn = MySQLdb.connect(**MY, passwd="", db="test")
            self.conn.autocommit(True)

    def query(self, sql: str) -> Any:
        cur = self.conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        cur.close()
        return rows

    def session(self, conn: Any) -> int:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()" if self.postgres else "SELECT CONNECTION_ID()")
        (session,) = cur.fetchone()
        cur.close()
        return int(session)

    def alive(self, sessions: list[int]) -> int:
        if not sessions:
            return 0
        table = (
            "pg_stat_activity WHERE pid"
            if self.postgres
            else "information_schema.PROCESSLIST WHERE ID"
        )
        ids = ", ".join(str(s) for s in sessions)
        return int(self.query(f"SELECT count(*) FROM {table} IN ({ids})")[0][0])

    def left(self, sessions: list[int]) -> int:
        """Count the sessions still there: at once on PostgreSQL, polled on MariaDB."""
        deadline = time.monotonic() + (0 if self.postgres else 5)
        while True:
            count = self.alive(sessions)
            if count == 0 or time.monotonic() >= deadline:
                return count
            green_sleep(0.02)

    def kill(self, session: int) -> None:
        if self.postgres:
            self.query(f"SELECT pg_terminate_backend({session})")
        else:
            self.conn.cursor().execute(f"KILL {session}")
        while self.alive([session]):
            green_sleep(0.01)


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        green_sleep(0.01)
    return True


def sessions_of(server: Server, pool: ConnectionPool, count: int) -> list[int]:
    held = [pool.get() for _ in range(count)]
    sessions = [server.session(conn) for conn in held]
    for conn in held:
        pool.put(conn)
    return sessions


def run_case(name: str, module: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    server = Server(postgres=module is psycopg2)
    result: dict[str, Any] = {"mode": MODE, "driver": name}

    def make(**settings: Any) -> ConnectionPool:
        return ConnectionPool(module, backend=BACKEND, **{**kwargs, **settings})

    pool = make(max_size=3)
    result["offloaded"] = pool.offloaded
    sessions = sessions_of(server, pool, 3)
    pool.close()
    result["close_left"] = server.left(sessions)

    pool = make(max_size=3)
    sessions = sessions_of(server, pool, 3)
    held = pool.get()
    held_session = server.session(held)
    pool.drain()
    idle = [s for s in sessions if s != held_session]
    result["drain_idle_left"] = server.left(idle)
    result["drain_held_alive"] = server.alive([held_session])
    pool.put(held)
    result["drain_returned_left"] = server.left([held_session])

    sessions = sessions_of(server, pool, 3)
    pool.resize(max_size=1)
    result["resize_alive"] = server.alive(sessions) if server.postgres else None
    result["resize_closed"] = pool.stats().closes["resized"]

    pool.pause()
    try:
        pool.get(timeout=0.05)
        result["paused_get"] = "served"
    except PoolTimeout:
        result["paused_get"] = "PoolTimeout"
    waiter = spawn(lambda: pool.get(timeout=20))
    eventually(lambda: pool.stats().waiting == 1)
    pool.resume()
    got = result_of(waiter)
    result["resumed_served"] = server.session(got) > 0
    pool.put(got)
    pool.close()

    pool = make(max_size=2, min_size=2)
    pool.open(wait=True, timeout=20)
    result["ready_idle"] = pool.stats().idle
    first, _ = sessions_of(server, pool, 2)
    server.kill(first)
    result["check_replaced"] = pool.check()
    pool.wait_ready(timeout=20)
    result["ready_again"] = pool.stats().idle
    pool.close()

    pool = make(max_size=1, min_size=1, keepalive=0.05, max_idle=None)
    pool.wait_ready(timeout=20)
    (session,) = sessions_of(server, pool, 1)
    server.kill(session)
    result["keepalive_found"] = eventually(lambda: pool.stats().closes["failed_check"] == 1)
    pool.close()
    server.conn.close()
    return result


def main() -> None:
    for name, module, kwargs in DRIVERS:
        print(json.dumps(run_case(name, module, kwargs)), flush=True)


if __name__ == "__main__":
    main()
