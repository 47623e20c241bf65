"""Real drivers through a green pool, in this process: print one JSON line per case.

Usage: ``python green_scenarios.py MODE`` with MODE ``gevent-patched``, ``eventlet-patched``
(monkey-patched first), ``gevent`` or ``eventlet`` (green backend, no patching).

For each driver of the cooperation table, offloaded as "auto" decides and then forced the
other way where that is safe, each case:
- runs the classic idiom and a commit/rollback through ``pool.connection()``;
- runs 16 green threads, each a 300 ms server-side sleep, through a pool of 16 (after a
  warm-up round, so connects are not timed), while a ticker green thread sleeps 1 ms in a
  loop; reports the wall time and the ticker's worst lateness.
"""

from __future__ import annotations

from greenmode import BACKEND, MODE, PATCHED  # monkey-patches: before every other import

# isort: split

import json
import time
import uuid
from typing import Any

if BACKEND == "gevent":
    import gevent

    def spawn(fn: Any, *args: Any) -> Any:
        return gevent.spawn(fn, *args)

    def join_all(handles: list[Any]) -> None:
        gevent.joinall(handles, raise_error=True)

    green_sleep = gevent.sleep
else:
    import eventlet

    def spawn(fn: Any, *args: Any) -> Any:
        return eventlet.spawn(fn, *args)

    def join_all(handles: list[Any]) -> None:
        for handle in handles:
            handle.wait()

    green_sleep = eventlet.sleep

import MySQLdb
import pg8000.dbapi
import psycopg
import psycopg2
import pymysql

from dbapi_pool import ConnectionPool

PG = {"host": "127.0.0.1", "user": "postgres"}
MY = {"host": "127.0.0.1", "user": "root"}
PG_SLEEP, MY_SLEEP = "SELECT pg_sleep(0.3)", "SELECT SLEEP(0.3)"
# PyMySQL sets up TLS (23 ms of CPU) at every connect unless told not to; loopback here.
DRIVERS: list[tuple[str, Any, dict[str, Any], str]] = [
    ("psycopg2", psycopg2, {**PG, "dbname": "test"}, PG_SLEEP),
    ("psycopg", psycopg, {**PG, "dbname": "test"}, PG_SLEEP),
    ("pg8000", pg8000.dbapi, {**PG, "database": "test"}, PG_SLEEP),
    ("MySQLdb", MySQLdb, {**MY, "passwd": "", "db": "test"}, MY_SLEEP),
    (
        "pymysql",
        pymysql,
        {**MY, "password": "", "database": "test", "ssl_disabled": True},
        MY_SLEEP,
    ),
]
#: Pure-Python drivers: after monkey-patching their sockets are green, bound to the hub of
#: the thread that made them, so they must not be forced into OS threads (gevent refuses:
#: "Cannot switch to a different thread").
PURE_PYTHON = {"pg8000", "pymysql"}


def idiom(pool: ConnectionPool) -> bool:
    table = f"green_{uuid.uuid4().hex[:10]}"
    conn = pool.get()
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
        cur.close()
    finally:
        pool.put(conn)
    with pool.connection() as conn:
        conn.cursor().execute(f"CREATE TABLE {table} (x INTEGER)")
    with pool.connection() as conn:
        conn.cursor().execute(f"INSERT INTO {table} VALUES (1)")
    try:
        with pool.connection() as conn:
            conn.cursor().execute(f"INSERT INTO {table} VALUES (2)")
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    with pool.connection() as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT x FROM {table}")
        rows = [tuple(r) for r in cur.fetchall()]
        cur.execute(f"DROP TABLE {table}")
    return rows == [(1,)]


def hub(pool: ConnectionPool, sleep_sql: str) -> tuple[float, float]:
    def work(sql: str = sleep_sql) -> None:
        with pool.connection() as conn:
            cur = conn.cursor()
            cur.execute(sql)
            cur.fetchall()
            cur.close()

    join_all([spawn(work, "SELECT 1") for _ in range(16)])  # warm-up: open the 16 connections
    worst = [0.0]
    running = [True]

    def ticker() -> None:
        while running[0]:
            before = time.monotonic()
            green_sleep(0.001)
            worst[0] = max(worst[0], time.monotonic() - before - 0.001)

    tick = spawn(ticker)
    started = time.monotonic()
    join_all([spawn(work) for _ in range(16)])
    wall = time.monotonic() - started
    running[0] = False
    join_all([tick])
    return wall, worst[0]


def run_case(name: str, module: Any, kwargs: dict[str, Any], sleep_sql: str, offload: Any) -> None:
    pool = ConnectionPool(module, max_size=16, backend=BACKEND, offload=offload, **kwargs)
    try:
        ok = idiom(pool)
        wall, lag = hub(pool, sleep_sql)
        stats = pool.stats()
        result = {
            "mode": MODE,
            "driver": name,
            "offload": offload,
            "offloaded": pool.offloaded,
            "backend": pool.backend,
            "idiom": ok,
            "wall": wall,
            "lag": lag,
            "in_use": stats.in_use,
            "size": stats.size,
        }
    finally:
        pool.close()
    print(json.dumps(result), flush=True)


def main() -> None:
    for name, module, kwargs, sleep_sql in DRIVERS:
        run_case(name, module, kwargs, sleep_sql, "auto")
        probe = ConnectionPool(module, backend=BACKEND, **kwargs)
        direct = not probe.offloaded
        probe.close()
        # The other way round, where it is safe: a driver that blocks the hub is never
        # forced direct (it would freeze every green thread for the whole query).
        if direct and not (PATCHED and name in PURE_PYTHON):
            run_case(name, module, kwargs, sleep_sql, True)
    if BACKEND == "gevent" and PATCHED:
        from psycogreen.gevent import patch_psycopg

        patch_psycopg()
        run_case("psycopg2+psycogreen", psycopg2, {**PG, "dbname": "test"}, PG_SLEEP, "auto")


if __name__ == "__main__":
    main()
