"""The lifecycle hooks with real drivers through a green pool: print one JSON line per case.

Usage: ``python hooks_scenarios.py MODE`` (``gevent-patched``, ``eventlet-patched``,
``gevent``, ``eventlet``). For psycopg2 (PostgreSQL) and PyMySQL and MySQLdb (MariaDB),
offloaded as "auto" decides, each case runs ``configure`` (a session variable every lent
connection shows; a failing one leaves no session on the server) and ``check`` (a rejected
connection is replaced within the same ``get()``), with green threads sharing the pool;
under eventlet, also through the drop-in ``eventlet_db_pool`` pool (offloaded to tpool).
test_hooks_green.py reads the results.
"""

from __future__ import annotations

from greenmode import (  # monkey-patches: before every other import
    BACKEND,
    MODE,
    green_sleep,
    run_green,
)

# isort: split

import json
import time
from typing import Any

import MySQLdb
import psycopg2
from green_drivers import DRIVERS, MY, PG

from dbapi_pool import ConnectionPool


def scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    cur.execute(sql)
    (value,) = cur.fetchone()
    cur.close()
    return value


class Hooks:
    """A ``configure`` setting a session variable, a ``check`` rejecting chosen sessions."""

    def __init__(self, postgres: bool, fail: bool = False) -> None:
        self.postgres = postgres
        self.fail = fail
        self.sessions: list[int] = []
        self.rejected: set[int] = set()
        self.checks = 0

    def session(self, conn: Any) -> int:
        return int(
            scalar(conn, "SELECT pg_backend_pid()" if self.postgres else "SELECT CONNECTION_ID()")
        )

    def tag(self, conn: Any) -> Any:
        if self.postgres:
            return scalar(conn, "SELECT current_setting('dbapi_pool.tag', true)")
        return scalar(conn, "SELECT @dbapi_pool_tag")

    def configure(self, conn: Any) -> None:
        self.sessions.append(self.session(conn))
        if self.fail:
            raise RuntimeError("configure refused")
        cur = conn.cursor()
        cur.execute(
            "SET dbapi_pool.tag = 'hooked'" if self.postgres else "SET @dbapi_pool_tag = 'hooked'"
        )
        cur.close()

    def check(self, conn: Any) -> bool:
        self.checks += 1
        return self.session(conn) not in self.rejected


def left(postgres: bool, sessions: list[int]) -> int:
    """Count these sessions still on the server (polled on MariaDB, which drops a closed
    session from PROCESSLIST a moment later)."""
    if postgres:
        monitor = psycopg2.connect(**PG)
        table = "pg_stat_activity WHERE pid"
    else:
        monitor = MySQLdb.connect(**MY, passwd="", db="test")
        table = "information_schema.PROCESSLIST WHERE ID"
    ids = ", ".join(str(s) for s in sessions)
    deadline = time.monotonic() + (0 if postgres else 5)
    try:
        while True:
            count = int(scalar(monitor, f"SELECT count(*) FROM {table} IN ({ids})"))
            if count == 0 or time.monotonic() >= deadline:
                return count
            green_sleep(0.02)
    finally:
        monitor.close()


def run_case(name: str, pool_type: Any, module: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    postgres = module is psycopg2
    hooks = Hooks(postgres)
    pool = pool_type(module, hooks, **kwargs)
    result: dict[str, Any] = {"mode": MODE, "driver": name, "offloaded": pool.offloaded}

    def borrow() -> list[Any]:
        tags = []
        for _ in range(3):
            conn = pool.get()
            tags.append(hooks.tag(conn))
            conn.rollback()
            pool.put(conn)
            green_sleep(0)
        return tags

    result["tags"] = sorted({tag for tags in run_green([borrow] * 4) for tag in tags})
    result["configured"] = len(hooks.sessions)
    result["checked"] = hooks.checks > 0
    conn = pool.get()
    old = hooks.session(conn)
    pool.put(conn)
    hooks.rejected.add(old)
    conn = pool.get()
    result["replaced"] = hooks.session(conn) != old and hooks.tag(conn) == "hooked"
    pool.put(conn)
    result["failed_check"] = pool.stats().closes["failed_check"]
    result["rejected_left"] = left(postgres, [old])
    pool.close()

    failing = Hooks(postgres, fail=True)
    pool = pool_type(module, failing, **kwargs)
    try:
        pool.get()
        result["failed_get"] = "served"
    except RuntimeError as exc:
        result["failed_get"] = str(exc)
    result["connect_failures"] = pool.stats().connect_failures
    result["failed_left"] = left(postgres, failing.sessions)
    pool.close()
    return result


def core_pool(module: Any, hooks: Hooks, **kwargs: Any) -> Any:
    return ConnectionPool(
        module,
        backend=BACKEND,
        max_size=2,
        configure=hooks.configure,
        check=hooks.check,
        reconnect_min=0,
        reconnect_max=0,
        **kwargs,
    )


def compat_pool(module: Any, hooks: Hooks, **kwargs: Any) -> Any:
    from dbapi_pool.compat import eventlet_db_pool

    return eventlet_db_pool.TpooledConnectionPool(
        module, max_size=2, configure=hooks.configure, check=hooks.check, **kwargs
    )


def main() -> None:
    for name, module, kwargs in DRIVERS:
        print(json.dumps(run_case(name, core_pool, module, kwargs)), flush=True)
    if BACKEND == "eventlet":
        for name, module, kwargs in DRIVERS:
            case = run_case(f"compat {name}", compat_pool, module, kwargs)
            print(json.dumps(case), flush=True)


if __name__ == "__main__":
    main()
