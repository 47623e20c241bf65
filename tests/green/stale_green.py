"""A session killed just after its return, through a green pool: print one JSON line a
driver (run by test_stale_connections.py in a subprocess: patching cannot be undone).

Usage: ``python stale_green.py MODE`` with MODE ``gevent-patched``, ``eventlet-patched``
(monkey-patched first), ``gevent`` or ``eventlet`` (green backend, no patching).
"""

from __future__ import annotations

from greenmode import MODE  # monkey-patches: before every other import

# isort: split

import json
import time
from typing import Any

import MySQLdb
import pg8000.dbapi
import psycopg
import psycopg2
import pymysql

from dbapi_pool import ConnectionPool

PG = {"host": "127.0.0.1", "user": "postgres"}
MY = {"host": "127.0.0.1", "user": "root", "password": "", "database": "test"}
MYSQLDB = {"host": "127.0.0.1", "user": "root"}
PG_SESSION = "SELECT pg_backend_pid()"
MY_SESSION = "SELECT CONNECTION_ID()"
DRIVERS: list[tuple[str, Any, dict[str, Any], str]] = [
    ("psycopg2", psycopg2, {**PG, "dbname": "test"}, PG_SESSION),
    ("psycopg", psycopg, {**PG, "dbname": "test"}, PG_SESSION),
    ("pg8000", pg8000.dbapi, {**PG, "database": "test"}, PG_SESSION),
    ("MySQLdb", MySQLdb, {**MYSQLDB, "passwd": "", "db": "test"}, MY_SESSION),
    ("pymysql", pymysql, {**MY, "ssl_disabled": True}, MY_SESSION),
]


def scalar(conn: Any, sql: str, params: Any = None) -> Any:
    cur = conn.cursor()
    if params is None:  # pg8000 refuses params=None
        cur.execute(sql)
    else:
        cur.execute(sql, params)
    row = cur.fetchone()
    cur.close()
    return row[0]


class Monitor:
    """End sessions and watch them go, from a separate autocommit connection."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        if postgres:
            self.conn = psycopg2.connect(**PG, dbname="test")
            self.conn.autocommit = True
        else:
            self.conn = pymysql.connect(**MY, autocommit=True)

    def end(self, session: int) -> None:
        if self.postgres:
            scalar(self.conn, "SELECT pg_terminate_backend(%s)", (session,))
        else:
            self.conn.cursor().execute(f"KILL {int(session)}")

    def gone(self, session: int, timeout: float = 10) -> bool:
        table, column = (
            ("pg_stat_activity", "pid")
            if self.postgres
            else ("information_schema.PROCESSLIST", "ID")
        )
        sql = f"SELECT count(*) FROM {table} WHERE {column} = %s"
        deadline = time.monotonic() + timeout
        while scalar(self.conn, sql, (session,)) != 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def run_case(name: str, module: Any, kwargs: dict[str, Any], session_sql: str) -> None:
    backend = MODE.removesuffix("-patched")
    pool = ConnectionPool(module, max_size=2, backend=backend, check_idle_after=60, **kwargs)
    monitor = Monitor(session_sql == PG_SESSION)
    result: dict[str, Any] = {"mode": MODE, "driver": name}
    try:
        with pool.connection(timeout=15) as conn:
            old = int(scalar(conn, session_sql))
        returned = time.monotonic()
        monitor.end(old)
        result["gone"] = monitor.gone(old)
        time.sleep(max(0.0, returned + 0.3 - time.monotonic()))
        try:
            with pool.connection(timeout=15) as conn:
                result["replaced"] = int(scalar(conn, session_sql)) != old
        except Exception as exc:  # the defect: the first query fails
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["failed_check"] = pool.stats().closes["failed_check"]
    finally:
        pool.close()
        monitor.conn.close()
    print(json.dumps(result), flush=True)


def main() -> None:
    for name, module, kwargs, session_sql in DRIVERS:
        run_case(name, module, kwargs, session_sql)


if __name__ == "__main__":
    main()
