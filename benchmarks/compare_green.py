"""The green-thread rows of compare.py, run in a child process that eventlet monkey-patched.

Run by compare.py as ``python compare_green.py CONFIG_JSON``; prints the trials as JSON on
stdout (progress on stderr). eventlet.monkey_patch() makes ``threading`` and ``time.sleep``
green, so compare_runner's loop drives green threads unchanged, and installs eventlet's wait
callback in psycopg2, so psycopg2 yields to the hub ("raw" rows call it directly). The
"tpooled" / "offload" rows run driver calls in eventlet's tpool of OS threads instead.

Nothing here imports eventlet at module level: compare.py imports this module for the
scenario's rows and targets without patching itself.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from compare_pools import open_nopool, same_ops
from compare_rows import (
    FAKE_1MS,
    NOPOOL,
    PSYCOPG2,
    PYMYSQL,
    SQLITE3,
    Driver,
    Opener,
    Row,
    Scenario,
    Setup,
    Target,
)
from compare_runner import Workers

BASELINE = "eventlet_nopool"
EVENTLET_RAW = "eventlet/raw"
EVENTLET_TPOOLED = "eventlet/tpooled"


def dbapi_pool_green(offload: bool | str, offloaded: bool | None = None) -> Opener:
    """Build the opener of dbapi_pool's ConnectionPool on the eventlet backend; the trial
    fails unless the pool's calls are ``offloaded`` (default: ``offload is True``)."""
    expected = offload is True if offloaded is None else offloaded

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        from dbapi_pool import ConnectionPool

        size = setup.size
        pool = ConnectionPool(
            setup.module,
            min_size=size,
            max_size=size,
            backend="eventlet",
            offload=offload,
            **setup.kwargs,
        )
        try:
            if pool.offloaded != expected:
                raise RuntimeError(f"expected offloaded={expected}, got {pool.offloaded}")
            workers = same_ops(setup.workers, setup.driver.sql, pool.get, pool.put)
            workers.note = f"offloaded={pool.offloaded}"
            yield workers
        finally:
            pool.close()

    return open_pool


def db_pool_opener(module: str, cls: str) -> Opener:
    """Build the opener of an eventlet ``db_pool``-style pool class (eventlet's or ours)."""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        import importlib

        pool_class = getattr(importlib.import_module(module), cls)
        size = setup.size
        pool = pool_class(setup.module, size, size, **setup.kwargs)
        try:
            workers = same_ops(setup.workers, setup.driver.sql, pool.get, pool.put)
            workers.note = offload_note(pool)
            yield workers
        finally:
            pool.clear()

    return open_pool


def eventlet_pool(kind: str) -> Opener:
    """Build the opener of eventlet's ``RawConnectionPool`` or ``TpooledConnectionPool``."""
    return db_pool_opener("eventlet.db_pool", f"{kind}ConnectionPool")


COMPAT = "dbapi_pool.compat.eventlet_db_pool"
EVENTLET_TPOOLED_BLOCKING = "eventlet/tpooled-blocking"


def blocking(opener: Opener) -> Opener:
    """Run ``opener``'s trial with psycopg2's green wait callback removed: psycopg2 then
    blocks like a driver that cannot cooperate (mysqlclient...), the case offloading is
    for. (The callback is process-wide: only these rows run while it is off.)"""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        from psycopg2 import extensions

        callback = extensions.get_wait_callback()
        extensions.set_wait_callback(None)
        try:
            with opener(setup) as workers:
                yield workers
        finally:
            extensions.set_wait_callback(callback)

    return open_pool


def yielding(opener: Opener) -> Opener:
    """Run ``opener``'s trial with each worker yielding to the hub once per request, as
    green code doing any I/O between requests does: on a driver that blocks the hub, a
    worker that never yields would starve the others, and the trial's clock."""

    @contextmanager
    def open_pool(setup: Setup) -> Iterator[Workers]:
        import eventlet

        with opener(setup) as workers:
            ops = workers.ops

            def yielding_ops(index: int) -> tuple[Any, Any]:
                checkout, checkin = ops(index)

                def checkin_and_yield(conn: Any) -> None:
                    checkin(conn)
                    eventlet.sleep(0)

                return checkout, checkin_and_yield

            yield dataclasses.replace(workers, ops=yielding_ops)

    return open_pool


def offload_note(pool: Any) -> str:
    """Say whether a db_pool-style pool runs driver calls in tpool (ours tell; eventlet's
    TpooledConnectionPool always does, its RawConnectionPool never)."""
    offloaded = getattr(pool, "offloaded", None)
    if offloaded is None:
        offloaded = "Tpooled" in type(pool).__name__
    return f"offloaded={offloaded}"


def green_rows() -> tuple[Row, ...]:
    """Return the rows of the green scenario (psycopg2 on PostgreSQL)."""
    eventlet = ("eventlet",)

    def row(name: str, label: str, opener: Opener) -> Row:
        return Row(name, label, PSYCOPG2, opener, BASELINE, eventlet)

    return (
        row(BASELINE, "no pool: one green psycopg2 connection per green thread", open_nopool),
        row(
            "dbapi_pool/raw",
            "dbapi_pool, backend='eventlet', driver called directly",
            dbapi_pool_green("auto"),
        ),
        row(
            "dbapi_pool/offload",
            "dbapi_pool, backend='eventlet', offload=True (the pool's own OS threads)",
            dbapi_pool_green(True),
        ),
        row(
            "compat/raw",
            "dbapi_pool.compat.eventlet_db_pool.RawConnectionPool",
            db_pool_opener(COMPAT, "RawConnectionPool"),
        ),
        row(
            "compat/tpooled",
            "dbapi_pool.compat.eventlet_db_pool.TpooledConnectionPool",
            db_pool_opener(COMPAT, "TpooledConnectionPool"),
        ),
        row(
            EVENTLET_RAW,
            "eventlet.db_pool.RawConnectionPool",
            eventlet_pool("Raw"),
        ),
        row(
            EVENTLET_TPOOLED,
            "eventlet.db_pool.TpooledConnectionPool",
            eventlet_pool("Tpooled"),
        ),
        row(
            "dbapi_pool/offload-blocking",
            "dbapi_pool/offload with psycopg2 blocking (its green wait callback removed)",
            blocking(dbapi_pool_green(True)),
        ),
        row(
            "compat/tpooled-blocking",
            "compat/tpooled with psycopg2 blocking (its green wait callback removed)",
            blocking(db_pool_opener(COMPAT, "TpooledConnectionPool")),
        ),
        row(
            EVENTLET_TPOOLED_BLOCKING,
            "eventlet/tpooled with psycopg2 blocking (its green wait callback removed)",
            blocking(eventlet_pool("Tpooled")),
        ),
    )


GREEN = Scenario(
    "green",
    "PostgreSQL SELECT 1 (psycopg2), 16 green threads on 8 connections (eventlet, monkey-patched)",
    16,
    8,
    green_rows(),
    targets=(
        Target("dbapi_pool/raw", EVENTLET_RAW, 1.0),
        Target("compat/raw", EVENTLET_RAW, 1.0),
        Target("dbapi_pool/offload", EVENTLET_TPOOLED, 5.0),
        Target("compat/tpooled", EVENTLET_TPOOLED, 5.0),
        Target("dbapi_pool/offload-blocking", EVENTLET_TPOOLED_BLOCKING, 5.0),
    ),
    kind="green",
)
assert NOPOOL != BASELINE  # the green rows are divided by the green baseline, not the threads'


def same_as_threads_rows(driver: Driver, ours: Opener, blocks: bool) -> tuple[Row, ...]:
    """Return the rows of a thread scenario's green version: the baseline, dbapi_pool
    (``ours``), eventlet's raw pool and, for a driver that ``blocks`` the hub, both pools
    with and without offloading, every worker yielding once per request."""

    def row(name: str, label: str, opener: Opener) -> Row:
        return Row(
            name, label, driver, yielding(opener) if blocks else opener, BASELINE, ("eventlet",)
        )

    rows = [
        row(BASELINE, "no pool: one connection per green thread", open_nopool),
        row("dbapi_pool", "dbapi_pool, backend='eventlet' (offload='auto')", ours),
        row(EVENTLET_RAW, "eventlet.db_pool.RawConnectionPool", eventlet_pool("Raw")),
    ]
    if blocks:
        rows += [
            row(
                "dbapi_pool/direct",
                "dbapi_pool, offload=False: the driver blocks the hub",
                dbapi_pool_green(False),
            ),
            row(
                EVENTLET_TPOOLED, "eventlet.db_pool.TpooledConnectionPool", eventlet_pool("Tpooled")
            ),
        ]
    return tuple(rows)


#: Thread scenarios of compare.py measured again with green threads (no targets of their
#: own: the issue sets them for the PostgreSQL one above).
ALSO_GREEN = (
    Scenario(
        "green.S2",
        "fake driver, 1 ms query (a green sleep), 32 green threads on 4 connections (eventlet)",
        32,
        4,
        # The fake driver sleeps with the patched time.sleep: it cooperates, but it is not
        # in the cooperation table, so offload='auto' would offload it.
        same_as_threads_rows(FAKE_1MS, dbapi_pool_green(False), blocks=False),
        ideal=4 / 0.001,
        kind="green",
    ),
    Scenario(
        "green.S4.pymysql",
        "MariaDB SELECT 1, PyMySQL (green sockets), 16 green threads on 8 connections (eventlet)",
        16,
        8,
        same_as_threads_rows(PYMYSQL, dbapi_pool_green("auto", offloaded=False), blocks=False),
        kind="green",
    ),
    Scenario(
        "green.S6",
        "sqlite3 SELECT 1 (file), 8 green threads on 4 connections, each yielding once a "
        "request (eventlet)",
        8,
        4,
        same_as_threads_rows(SQLITE3, dbapi_pool_green("auto", offloaded=True), blocks=True),
        kind="green",
    ),
)
#: Every scenario the child runs, in the tables' order.
SCENARIOS = (GREEN, *ALSO_GREEN)


# -- the child --------------------------------------------------------------------------------


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    """Run the chosen scenarios' rows, interleaved within each repetition; return the
    trials."""
    from compare_rows import Endpoints, run_rep

    endpoints = Endpoints(**config["endpoints"])
    chosen = [
        (scenario, [row for row in scenario.rows if row.name in config["rows"][scenario.id]])
        for scenario in SCENARIOS
        if scenario.id in config["rows"]
    ]
    trials = []
    for rep in range(config["reps"]):
        for scenario, rows in chosen:
            trials += run_rep(scenario, rows, endpoints, rep, config["warmup"], config["duration"])
    return {"trials": [trial.to_json() for trial in trials]}


def main() -> int:
    """Monkey-patch, run the trials described by argv[1], print them as JSON on stdout."""
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()
    config = json.loads(sys.argv[1])
    json.dump(run_child(config), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
