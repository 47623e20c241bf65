"""The rows and scenarios of compare.py: which contenders each scenario runs, on which driver,
with which targets; and the loop over a scenario's rows in one repetition.

The contenders themselves (how each pool is opened) are in compare_pools.py. Every pool keeps
its default reset and checks, unless the row's name says otherwise (``/noreset``,
``/noping``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from compare_pools import (
    dbapi_pool_async_opener,
    dbapi_pool_opener,
    dbutils_opener,
    open_connect,
    open_lockedproxy,
    open_nopool,
    open_psycopg2_pool,
    open_psycopg_pool,
    open_simplequeue,
    sqlalchemy_opener,
)
from compare_runner import (
    AsyncWorkers,
    Trial,
    Workers,
    describe_error,
    drive,
    drive_async,
    prepare,
)

# -- what a row needs to know -----------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Hold where the databases are: connect keywords, and the SQLite file."""

    pg: Mapping[str, Any]
    mysql: Mapping[str, Any]
    sqlite_path: str


@dataclass(frozen=True)
class Driver:
    """Name a DB-API module, its statement, and how to build its connect() keywords."""

    name: str
    module: str
    sql: str
    kwargs: Callable[[Endpoints], dict[str, Any]]


@dataclass(frozen=True)
class Setup:
    """Give an opener everything for one trial: the driver and the scenario's sizes."""

    driver: Driver
    module: Any
    kwargs: dict[str, Any]
    workers: int
    size: int

    def connect(self) -> Any:
        """Open one driver connection."""
        return self.module.connect(**self.kwargs)


Opener = Callable[[Setup], AbstractContextManager[Workers]]
#: Opens an asyncio row's pool, inside the event loop its trial runs on.
AsyncOpener = Callable[[Setup], AbstractAsyncContextManager[AsyncWorkers]]


@dataclass(frozen=True)
class Row:
    """Name a contender, its driver, how to open it, and the row its ratio is taken to."""

    name: str
    label: str
    driver: Driver
    #: An AsyncOpener when ``in_asyncio``.
    open: Opener | AsyncOpener
    baseline: str
    needs: tuple[str, ...] = ()
    #: Its workers are asyncio tasks on an event loop of the trial's own.
    in_asyncio: bool = False

    def missing(self) -> list[str]:
        """Return the modules this row needs that are not installed."""
        wanted = (self.driver.module, *self.needs)
        return [name for name in wanted if importlib.util.find_spec(name) is None]


@dataclass(frozen=True)
class Target:
    """State a goal of the issue: ``row`` ÷ ``reference`` at least ``at_least``."""

    row: str
    reference: str
    at_least: float
    all_served: bool = False
    min_jain: float | None = None


@dataclass(frozen=True)
class Scenario:
    """Describe one table: the workers, the pool size, the rows and the targets."""

    id: str
    title: str
    workers: int
    size: int
    rows: tuple[Row, ...]
    timed: bool = True
    ideal: float | None = None
    targets: tuple[Target, ...] = field(default_factory=tuple)
    #: Where it runs: "threads" (this process), "asyncio" (async_select1), "green" (a child).
    kind: str = "threads"

    def row(self, name: str) -> Row:
        """Return the row called ``name``."""
        return next(row for row in self.rows if row.name == name)


# -- drivers ----------------------------------------------------------------------------------


def psycopg2_kwargs(endpoints: Endpoints) -> dict[str, Any]:
    """Return psycopg2 keywords for an autocommit session (as in perf-anchors.md)."""
    from async_select1 import psycopg2_autocommit_factory

    return {**endpoints.pg, "connection_factory": psycopg2_autocommit_factory()}


FAKE = Driver("fake", "compare_fakedb", "SELECT 1", lambda e: {})
FAKE_1MS = Driver("fake 1 ms", "compare_fakedb", "SELECT 1", lambda e: {"delay": 0.001})
PSYCOPG2 = Driver("psycopg2", "psycopg2", "SELECT 1", psycopg2_kwargs)
PSYCOPG = Driver("psycopg", "psycopg", "SELECT 1", lambda e: {**e.pg, "autocommit": True})
PYMYSQL = Driver("PyMySQL", "pymysql", "SELECT 1", lambda e: {**e.mysql, "autocommit": True})
MYSQLCLIENT = Driver(
    "mysqlclient", "MySQLdb", "SELECT 1", lambda e: {**e.mysql, "autocommit": True}
)
SQLITE3 = Driver(
    "sqlite3",
    "sqlite3",
    "SELECT 1",
    lambda e: {"database": e.sqlite_path, "check_same_thread": False},
)


def make_setup(row: Row, endpoints: Endpoints, workers: int, size: int) -> Setup:
    """Import the row's driver and build its Setup."""
    module = importlib.import_module(row.driver.module)
    return Setup(row.driver, module, row.driver.kwargs(endpoints), workers, size)


# -- scenarios --------------------------------------------------------------------------------

NOPOOL = "nopool"


def common_rows(driver: Driver, psycopg2_pool: bool) -> tuple[Row, ...]:
    """Return the baseline, dbapi_pool and the generic peers on ``driver``."""
    rows = [
        Row(NOPOOL, "no pool: one connection per worker", driver, open_nopool, NOPOOL),
        Row(
            "dbapi_pool",
            "dbapi_pool ConnectionPool (defaults)",
            driver,
            dbapi_pool_opener(),
            NOPOOL,
        ),
        Row(
            "sqlalchemy",
            "SQLAlchemy QueuePool (rollback on return)",
            driver,
            sqlalchemy_opener(),
            NOPOOL,
            ("sqlalchemy",),
        ),
        Row(
            "dbutils",
            "DBUtils PooledDB (ping=1, reset=True)",
            driver,
            dbutils_opener(),
            NOPOOL,
            ("dbutils",),
        ),
    ]
    if psycopg2_pool:
        label = "psycopg2 ThreadedConnectionPool + BoundedSemaphore"
        rows.append(Row("psycopg2.pool", label, driver, open_psycopg2_pool, NOPOOL, ("psycopg2",)))
    return tuple(rows)


def async_row(driver: Driver) -> Row:
    """Return the row of dbapi_pool's asyncio pool on ``driver`` (as many tasks as the
    scenario has workers)."""
    label = "dbapi_pool AsyncConnectionPool (defaults): tasks, the driver offloaded"
    return Row(
        "dbapi_pool/async", label, driver, dbapi_pool_async_opener(), NOPOOL, in_asyncio=True
    )


def connect_row(driver: Driver) -> Row:
    """Return the connect-per-request row on ``driver``."""
    return Row("connect", "connect per request, no pool", driver, open_connect, NOPOOL)


def psycopg3_rows() -> tuple[Row, ...]:
    """Return the psycopg 3 rows of S3, with their own baseline."""
    base = "nopool/psycopg"
    return (
        Row(base, "no pool, psycopg 3: one connection per worker", PSYCOPG, open_nopool, base),
        Row("dbapi_pool/psycopg", "dbapi_pool on psycopg 3", PSYCOPG, dbapi_pool_opener(), base),
        Row(
            "psycopg_pool",
            "psycopg_pool ConnectionPool (sync)",
            PSYCOPG,
            open_psycopg_pool,
            base,
            ("psycopg_pool",),
        ),
    )


def mysql_rows(driver: Driver) -> tuple[Row, ...]:
    """Return S4's rows on ``driver``: defaults, then the same pools without reset or ping."""
    return (
        *common_rows(driver, psycopg2_pool=False),
        async_row(driver),
        Row(
            "dbapi_pool/noreset",
            "dbapi_pool, reset=None",
            driver,
            dbapi_pool_opener(reset=None),
            NOPOOL,
        ),
        Row(
            "sqlalchemy/noreset",
            "SQLAlchemy, reset_on_return=None",
            driver,
            sqlalchemy_opener(reset=False),
            NOPOOL,
            ("sqlalchemy",),
        ),
        Row(
            "dbutils/noping",
            "DBUtils, ping=0, reset=False",
            driver,
            dbutils_opener(0, False),
            NOPOOL,
            ("dbutils",),
        ),
        connect_row(driver),
    )


def s3_rows() -> tuple[Row, ...]:
    """Return S3's rows: psycopg2 pools, connect per request, then the psycopg 3 ones."""
    return (
        *common_rows(PSYCOPG2, psycopg2_pool=True),
        async_row(PSYCOPG2),
        connect_row(PSYCOPG2),
        *psycopg3_rows(),
    )


def thread_scenarios() -> tuple[Scenario, ...]:
    """Return the scenarios measured with OS threads in this process."""
    fake = common_rows(FAKE, psycopg2_pool=True)
    return (
        Scenario(
            "S1.1",
            "no-op fake driver, 1 thread (pool overhead alone)",
            1,
            4,
            fake,
            timed=False,
            targets=(Target("dbapi_pool", NOPOOL, 0.30),),
        ),
        Scenario(
            "S1.2",
            "no-op fake driver, 8 threads on 4 connections",
            8,
            4,
            fake,
            timed=False,
            targets=(Target("dbapi_pool", NOPOOL, 0.15, all_served=True),),
        ),
        Scenario(
            "S2",
            "fake driver, 1 ms query, 32 threads on 4 connections",
            32,
            4,
            (*common_rows(FAKE_1MS, psycopg2_pool=True), async_row(FAKE_1MS)),
            ideal=4 / 0.001,
            targets=(Target("dbapi_pool", NOPOOL, 0.97, all_served=True, min_jain=0.95),),
        ),
        Scenario("S3.1", "PostgreSQL SELECT 1 (psycopg2), 1 thread, pool of 8", 1, 8, s3_rows()),
        Scenario(
            "S3.2",
            "PostgreSQL SELECT 1 (psycopg2), 16 threads on 8 connections",
            16,
            8,
            s3_rows(),
            targets=(Target("dbapi_pool", NOPOOL, 0.60),),
        ),
        Scenario(
            "S4.pymysql",
            "MariaDB SELECT 1, PyMySQL, 16 threads on 8 connections",
            16,
            8,
            mysql_rows(PYMYSQL),
            targets=(Target("dbapi_pool", NOPOOL, 0.60),),
        ),
        Scenario(
            "S4.mysqlclient",
            "MariaDB SELECT 1, mysqlclient, 16 threads on 8 connections",
            16,
            8,
            mysql_rows(MYSQLCLIENT),
            targets=(Target("dbapi_pool", NOPOOL, 0.60),),
        ),
        Scenario(
            "S6",
            "sqlite3 SELECT 1 (file), 8 threads on 4 connections",
            8,
            4,
            (*common_rows(SQLITE3, psycopg2_pool=False), async_row(SQLITE3), connect_row(SQLITE3)),
            targets=(Target("dbapi_pool", NOPOOL, 0.40),),
        ),
    )


def extend(
    scenario: Scenario, variants: Sequence[tuple[str, dict[str, Any]]], floor: bool
) -> Scenario:
    """Add dbapi_pool rows with other settings, and the floors, to ``scenario``."""
    ours = scenario.row("dbapi_pool")
    extra = [
        Row(name, f"dbapi_pool, {settings}", ours.driver, dbapi_pool_opener(**settings), NOPOOL)
        for name, settings in variants
    ]
    if floor:
        label = "queue.SimpleQueue of connections (floor: no reset, unfair)"
        extra.append(Row("simplequeue", label, ours.driver, open_simplequeue, NOPOOL))
        if scenario.id == "S1.1":  # one worker: an empty list never happens
            label = "a list under a lock, lent in a proxy (floor: nothing else)"
            extra.append(Row("lockedproxy", label, ours.driver, open_lockedproxy, NOPOOL))
    return dataclasses.replace(scenario, rows=(*scenario.rows, *extra)) if extra else scenario


# -- running ----------------------------------------------------------------------------------


def run_trial(
    scenario: Scenario, row: Row, endpoints: Endpoints, rep: int, warmup: float, duration: float
) -> Trial:
    """Open a fresh pool of ``row``, drive it, close it; return its numbers or its error."""
    trial = Trial(scenario.id, row.name, rep)
    prepare()
    try:
        setup = make_setup(row, endpoints, scenario.workers, scenario.size)
        if row.in_asyncio:
            opened = row.open(setup)
            asyncio.run(drive_tasks(opened, trial, warmup, duration))  # type: ignore[arg-type]
        else:
            with row.open(setup) as workers:  # type: ignore[union-attr]
                drive(workers, trial, warmup, duration, scenario.timed)
    except Exception as exc:
        trial.error = describe_error(exc)
    return trial


async def drive_tasks(
    opened: AbstractAsyncContextManager[AsyncWorkers],
    trial: Trial,
    warmup: float,
    duration: float,
) -> None:
    """Open an asyncio row's pool on the running loop and drive its tasks."""
    async with opened as workers:
        await drive_async(workers, trial, warmup, duration)


def run_rep(
    scenario: Scenario,
    rows: Sequence[Row],
    endpoints: Endpoints,
    rep: int,
    warmup: float,
    duration: float,
) -> list[Trial]:
    """Run each row once (one repetition), in order; report progress on stderr."""
    trials = []
    for row in rows:
        trial = run_trial(scenario, row, endpoints, rep, warmup, duration)
        shown = trial.error or f"{trial.ops_per_s:,.0f} ops/s"
        print(f"  rep {rep + 1} {scenario.id:<14} {row.name:<20} {shown}", file=sys.stderr)
        trials.append(trial)
    return trials
