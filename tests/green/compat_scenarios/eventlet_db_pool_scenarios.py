"""The green-thread scenarios of the eventlet_db_pool compatibility tests.

Run through ``run_scenarios.py`` (which monkey-patches first when asked): each scenario's
observations go under its name in one JSON object on stdout; a scenario that raises reports
``{"error": ...}`` so that only its own tests fail. Ports: ``silent``, a listener that
accepts and never answers; ``delayed``, a proxy to PostgreSQL that connects upstream only
after a delay; ``dead``, a port nothing listens on.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

import eventlet
import MySQLdb
import psycopg2

from dbapi_pool.compat import eventlet_db_pool as db_pool
from dbapi_pool.errors import PoolTimeout

PATCHED = "--patched" in sys.argv
MYSQL = {"host": "127.0.0.1", "user": "root", "passwd": "", "db": "test"}
POSTGRES = {"host": "127.0.0.1", "user": "postgres", "dbname": "test"}
SCENARIOS: dict[str, Callable[[dict[str, int]], dict[str, Any]]] = {}


def scenario(fn: Callable[[dict[str, int]], dict[str, Any]]) -> Callable[..., Any]:
    SCENARIOS[fn.__name__] = fn
    return fn


def ticker(ticks: list[float], count: int = 1000, every: float = 0.01) -> Any:
    """Spawn a green thread that records a tick every ``every`` s while it gets to run."""

    def run() -> None:
        for _ in range(count):
            ticks.append(time.monotonic())
            eventlet.sleep(every)

    return eventlet.spawn(run)


def ticks_between(ticks: list[float], start: float, end: float) -> int:
    return sum(start <= t <= end for t in ticks)


@scenario
def blocked_get(ports: dict[str, int]) -> dict[str, Any]:
    """A get() on an exhausted pool parks its green thread only, and put() wakes it."""
    pool = db_pool.TpooledConnectionPool(MySQLdb, max_size=1, **MYSQL)
    held = pool.get()
    base = held._base
    got: list[Any] = []

    def waiter() -> None:
        conn = pool.get()
        got.append(conn._base)
        pool.put(conn)

    ticks: list[float] = []
    tick = ticker(ticks)
    blocked = eventlet.spawn(waiter)
    start = time.monotonic()
    eventlet.sleep(0.2)
    observed = {"waiting": pool.waiting(), "ticks": ticks_between(ticks, start, time.monotonic())}
    pool.put(held)
    with eventlet.Timeout(5):
        blocked.wait()
    tick.kill()
    observed.update(
        woken_with_the_returned_connection=bool(got) and got[0] is base,
        waiting_after=pool.waiting(),
        current_size=pool.current_size,
        idle=len(pool.free_items),
    )
    pool.close()
    return observed


@scenario
def put_none_wakes_a_waiter(ports: dict[str, int]) -> dict[str, Any]:
    """put(None) frees a slot: the waiter opens a new connection with it."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_size=1, **MYSQL)
    held = pool.get()
    waiter = eventlet.spawn(pool.get)
    eventlet.sleep(0.1)
    waiting = pool.waiting()
    pool.put(None)
    with eventlet.Timeout(5):
        fresh = waiter.wait()
    observed = {
        "waiting_before": waiting,
        "new_connection": fresh._base is not held._base,
        "current_size": pool.current_size,
    }
    pool.put(held)  # detached by put(None): closed
    pool.put(fresh)
    observed["current_size_after"] = pool.current_size
    pool.close()
    return observed


@scenario
def get_timeout(ports: dict[str, int]) -> dict[str, Any]:
    """get(timeout=...) (an addition) gives up; without it, get() keeps waiting."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_size=1, **MYSQL)
    held = pool.get()
    start = time.monotonic()
    try:
        pool.get(timeout=0.2)
        outcome = "connection"
    except PoolTimeout:
        outcome = "PoolTimeout"
    elapsed = time.monotonic() - start
    forever = eventlet.spawn(pool.get)
    eventlet.sleep(0.5)
    still_waiting = pool.waiting()
    pool.put(held)
    with eventlet.Timeout(5):
        late = forever.wait()
    pool.put(late)
    pool.close()
    return {"outcome": outcome, "elapsed": elapsed, "default_still_waiting": still_waiting}


@scenario
def failed_connect_wakes_waiters(ports: dict[str, int]) -> dict[str, Any]:
    """A waiter whose connect fails passes the slot on: every waiter is woken."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_size=1, max_age=0, **MYSQL)
    held = pool.get()
    outcomes: list[str] = []

    def waiter() -> None:
        try:
            pool.put(pool.get())
            outcomes.append("connection")
        except MySQLdb.OperationalError:
            outcomes.append("MySQLdb.OperationalError")
        except Exception as exc:
            outcomes.append(f"{type(exc).__module__}.{type(exc).__name__}")

    waiters = [eventlet.spawn(waiter) for _ in range(2)]
    eventlet.sleep(0.1)
    waiting = pool.waiting()
    pool._kwargs["port"] = ports["dead"]  # the database "goes down"
    pool.put(held)  # max_age=0: closed, its slot goes to the first waiter
    with eventlet.Timeout(10):
        for thread in waiters:
            thread.wait()
    observed = {
        "waiting_before": waiting,
        "outcomes": outcomes,
        "waiting_after": pool.waiting(),
        "current_size": pool.current_size,
    }
    pool.close()
    return observed


@scenario
def connect_timeout(ports: dict[str, int]) -> dict[str, Any]:
    """connect_timeout raises this module's ConnectTimeout from get() and frees the slot."""
    observed = {}
    kinds = [
        ("TpooledConnectionPool", MySQLdb, MYSQL),
        ("TpooledConnectionPool", psycopg2, POSTGRES),
    ]
    if PATCHED:  # psycopg2 is green once patched: the raw pool can time out too
        kinds.append(("RawConnectionPool", psycopg2, POSTGRES))
    for cls_name, module, kwargs in kinds:
        cls = getattr(db_pool, cls_name)
        pool = cls(module, max_size=2, connect_timeout=0.5, **{**kwargs, "port": ports["silent"]})
        start = time.monotonic()
        try:
            pool.get()
            outcome = "connection"
        except db_pool.ConnectTimeout:
            outcome = "ConnectTimeout"
        except Exception as exc:
            outcome = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        observed[f"{cls_name}/{module.__name__}"] = {
            "outcome": outcome,
            "elapsed": time.monotonic() - start,
            "current_size": pool.current_size,
            "free": pool.free(),
        }
        pool.close()
    return observed


@scenario
def late_connection_closed(ports: dict[str, int]) -> dict[str, Any]:
    """A connection that completes after connect_timeout is closed, not leaked."""
    marker = f"dbapi_pool_compat_{uuid.uuid4().hex}"
    pool = db_pool.TpooledConnectionPool(
        psycopg2,
        connect_timeout=0.2,
        application_name=marker,
        **{**POSTGRES, "port": ports["delayed"]},
    )
    try:
        pool.get()
        outcome = "connection"
    except db_pool.ConnectTimeout:
        outcome = "ConnectTimeout"
    eventlet.sleep(2.0)  # the proxy connects after 0.6 s; the late connection is closed
    monitor = psycopg2.connect(**POSTGRES)
    cur = monitor.cursor()
    cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [marker])
    (sessions,) = cur.fetchone()
    monitor.close()
    observed = {"outcome": outcome, "sessions": sessions, "current_size": pool.current_size}
    pool.close()
    return observed


@scenario
def resize_serves_waiters(ports: dict[str, int]) -> dict[str, Any]:
    """A larger max_size lets a waiter connect at once, without a put()."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_size=1, **MYSQL)
    held = pool.get()
    waiter = eventlet.spawn(pool.get)
    eventlet.sleep(0.1)
    waiting = pool.waiting()
    pool.resize(2)
    with eventlet.Timeout(5):
        second = waiter.wait()
    observed = {
        "waiting_before": waiting,
        "waiting_after": pool.waiting(),
        "max_size": pool.max_size,
        "current_size": pool.current_size,
        "distinct": second._base is not held._base,
    }
    pool.put(second)
    pool.put(held)
    pool.close()
    return observed


@scenario
def idle_timer(ports: dict[str, int]) -> dict[str, Any]:
    """Idle connections older than max_idle are closed in the background."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_idle=0.3, **MYSQL)
    pool.put(pool.get())
    before = pool.current_size
    eventlet.sleep(1.0)
    observed = {"before": before, "after": pool.current_size, "idle": len(pool.free_items)}
    pool.close()
    return observed


@scenario
def queries_yield(ports: dict[str, int]) -> dict[str, Any]:
    """TpooledConnectionPool runs a blocking C driver's query in tpool: others run on."""
    observed = {}
    for cls in (db_pool.TpooledConnectionPool, db_pool.RawConnectionPool):
        pool = cls(MySQLdb, **MYSQL)
        conn = pool.get()
        ticks: list[float] = []
        tick = ticker(ticks)
        eventlet.sleep(0.05)
        start = time.monotonic()
        cur = conn.cursor()
        cur.execute("SELECT SLEEP(0.5)")
        cur.fetchall()
        observed[cls.__name__] = ticks_between(ticks, start + 0.05, time.monotonic() - 0.05)
        tick.kill()
        pool.put(conn)
        pool.close()
    return observed


@scenario
def base_exception_in_cleanup(ports: dict[str, int]) -> dict[str, Any]:
    """A BaseException from cleanup propagates, and its slot still goes to the waiter."""
    pool = db_pool.RawConnectionPool(MySQLdb, max_size=1, **MYSQL)
    held = pool.get()
    waiter = eventlet.spawn(pool.get)
    eventlet.sleep(0.1)

    def interrupt(conn: Any) -> None:
        raise KeyboardInterrupt

    try:
        pool.put(held, cleanup=interrupt)
        raised = None
    except KeyboardInterrupt:
        raised = "KeyboardInterrupt"
    with eventlet.Timeout(5):
        conn = waiter.wait()
    cur = conn.cursor()
    cur.execute("SELECT 1")
    observed = {
        "raised": raised,
        "waiter_row": cur.fetchall()[0][0],
        "current_size": pool.current_size,
    }
    pool.put(conn)
    pool.close()
    return observed


def main(ports: dict[str, int]) -> None:
    """Run every scenario and print the observations as one JSON object."""
    results: dict[str, Any] = {"patched": PATCHED}
    for name, run in SCENARIOS.items():
        try:
            results[name] = run(ports)
        except BaseException:  # report it; the other scenarios still run
            results[name] = {"error": traceback.format_exc()}
    print(json.dumps(results))
