"""Compare dbapi-pool with its peers side by side: the same closed loop, one process run.

Every worker repeats: check out, ``cursor()``, ``execute('SELECT 1')``, ``fetchone()``,
close the cursor, check in. Each row opens a fresh pool per trial (opening and filling it are
not timed); the rows of a scenario run one after the other inside each of ``--reps``
repetitions, so that ratios pair runs seconds apart. Scenarios (see benchmarks/README.md):

- S1.1 / S1.2: a no-op fake driver, 1 thread, then 8 threads on 4 connections;
- S2: the fake driver with a 1 ms query, 32 threads on 4 connections (fairness);
- S3.1 / S3.2: PostgreSQL ``SELECT 1`` (psycopg2; psycopg 3 rows too), 1, then 16 on 8;
- S4.pymysql / S4.mysqlclient: MariaDB ``SELECT 1``, 16 threads on 8 connections;
- S5: asyncio, 200 tasks on 8 connections (async_select1.py, run from here);
- S6: sqlite3 on a file in a temporary directory, 8 threads on 4 connections;
- green: eventlet, 16 green threads on 8 PostgreSQL connections, in a monkey-patched child.

Peers: SQLAlchemy's QueuePool (standalone), DBUtils' PooledDB, psycopg2's
ThreadedConnectionPool (behind a semaphore), psycopg_pool, eventlet's db_pool, connect per
request. Run ``python benchmarks/compare.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.metadata
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import compare_green
from compare_chart import write_png
from compare_report import (
    LEGEND,
    RowInfo,
    Table,
    render,
    summaries_of,
    verdict_text,
    verdicts_of,
    write_json,
)
from compare_rows import Endpoints, Scenario, Target, extend, run_rep, thread_scenarios
from compare_runner import Trial

HERE = os.path.dirname(os.path.abspath(__file__))
S5 = "S5"
GROUPS = {
    "S1": ("S1.1", "S1.2"),
    "S3": ("S3.1", "S3.2"),
    "S4": ("S4.pymysql", "S4.mysqlclient"),
    "greens": tuple(s.id for s in compare_green.SCENARIOS),
}
ORDER = (
    *("S1.1", "S1.2", "S2", "S3.1", "S3.2", "S4.pymysql", "S4.mysqlclient", S5, "S6"),
    *GROUPS["greens"],
)
PEERS = (
    "dbapi-pool",
    "SQLAlchemy",
    "DBUtils",
    "psycopg2-binary",
    "psycopg",
    "psycopg-pool",
    "asyncpg",
    "eventlet",
    "PyMySQL",
    "mysqlclient",
)

# -- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Hold what the command line chose."""

    reps: int
    duration: float
    warmup: float
    scenarios: tuple[str, ...]
    json_path: str | None
    png_path: str | None
    pg: dict[str, Any]
    mysql: dict[str, Any]
    #: Extra dbapi_pool rows for the thread scenarios: (name, settings).
    variants: tuple[tuple[str, dict[str, Any]], ...] = ()
    floor: bool = False


def conninfo(text: str) -> dict[str, Any]:
    """Parse ``key=value`` pairs separated by spaces (``port`` becomes an int)."""
    pairs = dict(item.split("=", 1) for item in text.split())
    if "port" in pairs:
        return {**pairs, "port": int(pairs["port"])}
    return pairs


def chosen(text: str | None) -> tuple[str, ...]:
    """Expand ``S1,S4.pymysql,green`` into scenario ids, in the tables' order."""
    if not text:
        return ORDER
    wanted: set[str] = set()
    for item in text.replace(" ", "").split(","):
        if item not in GROUPS and item not in ORDER:
            raise argparse.ArgumentTypeError(
                f"unknown scenario {item!r}; choose among {', '.join([*GROUPS, *ORDER])}"
            )
        wanted.update(GROUPS.get(item, (item,)))
    return tuple(sid for sid in ORDER if sid in wanted)


def variant(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``NAME=JSON`` (dbapi_pool settings) into a name and a dict."""
    name, _, settings = text.partition("=")
    try:
        parsed = json.loads(settings)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--variant {text!r}: {exc}") from exc
    if not name or not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"--variant {text!r}: want NAME={{...settings...}}")
    return f"dbapi_pool[{name}]", parsed


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Read the command line into Settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run: 1 rep x 0.05 s (~12 s in all)")
    add("--reps", type=int, help="repetitions, rows interleaved in each (default 5)")
    add("--duration", type=float, help="measured seconds per trial (default 0.5)")
    add("--warmup", type=float, help="unmeasured seconds before each trial's window (0.15)")
    add(
        "--scenarios",
        type=chosen,
        help="comma-separated: S1,S2,S3,S4,S5,S6,green,greens (every green one), or S1.2...",
    )
    add("--json", dest="json_path", metavar="PATH", help="write the summary numbers to PATH")
    add("--png", dest="png_path", metavar="PATH", help="draw the chart into PATH (matplotlib)")
    add("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test", help="key=value")
    add(
        "--mysql",
        default="host=127.0.0.1 port=3306 user=root password= database=test",
        help="key=value",
    )
    add(
        "--variant",
        action="append",
        type=variant,
        default=[],
        metavar="NAME=JSON",
        help="add a dbapi_pool row with these settings to the thread scenarios, e.g. "
        "'handoff5ms={\"handoff_after\": 0.005}' (repeatable)",
    )
    add(
        "--floor",
        action="store_true",
        help="add a 'simplequeue' row to the thread scenarios (a queue.SimpleQueue of "
        "connections, the cheapest unfair pool possible) and a 'lockedproxy' row to S1.1 "
        "(a list under a lock, lent in a proxy: the cheapest pool with both)",
    )
    args = parser.parse_args(argv)
    quick = (1, 0.05, 0.02) if args.quick else (5, 0.5, 0.15)
    reps = args.reps if args.reps is not None else quick[0]
    duration = args.duration if args.duration is not None else quick[1]
    warmup = args.warmup if args.warmup is not None else quick[2]
    if reps < 1 or duration <= 0 or warmup < 0:
        parser.error("--reps must be >= 1, --duration > 0, --warmup >= 0")
    scenarios = args.scenarios or ORDER
    return Settings(
        reps,
        duration,
        warmup,
        scenarios,
        args.json_path,
        args.png_path,
        conninfo(args.pg),
        conninfo(args.mysql),
        tuple(args.variant),
        args.floor,
    )


def scenarios_of(settings: Settings) -> tuple[Scenario, ...]:
    """Return the thread scenarios, with the extra rows the command line asked for."""
    return tuple(
        extend(scenario, settings.variants, settings.floor) for scenario in thread_scenarios()
    )


# -- tables from scenarios --------------------------------------------------------------------


def table_of(scenario: Scenario) -> Table:
    """Describe a scenario's table; rows whose modules are missing are skipped."""
    skipped = {
        r.name: f"not installed ({', '.join(r.missing())})" for r in scenario.rows if r.missing()
    }
    return Table(
        scenario.id,
        scenario.title,
        scenario.workers,
        scenario.size,
        [RowInfo(r.name, r.label, r.baseline) for r in scenario.rows],
        scenario.timed,
        scenario.ideal,
        scenario.targets,
        skipped,
    )


def asyncio_table() -> Table:
    """Describe S5 from async_select1.py's rows."""
    import async_select1 as s5

    rows = [RowInfo(row.name, row.label, s5.BASELINE) for row in s5.ROWS]
    skipped = {r.name: f"not installed ({', '.join(r.missing())})" for r in s5.ROWS if r.missing()}
    target = Target("dbapi_pool/psycopg2", s5.REFERENCE, 1.2)
    title = "asyncio SELECT 1 (PostgreSQL), 200 tasks on 8 connections (async_select1.py)"
    return Table(S5, title, 200, 8, rows, targets=(target,), skipped=skipped)


# -- running ----------------------------------------------------------------------------------


def run_threads(
    settings: Settings,
    scenarios: Sequence[Scenario],
    endpoints: Endpoints,
    tables: dict[str, Table],
) -> list[Trial]:
    """Run the thread scenarios: in each repetition, every scenario, every row in turn."""
    trials: list[Trial] = []
    for rep in range(settings.reps):
        for scenario in scenarios:
            rows = [row for row in scenario.rows if row.name not in tables[scenario.id].skipped]
            trials += run_rep(scenario, rows, endpoints, rep, settings.warmup, settings.duration)
    return trials


def run_asyncio(settings: Settings, table: Table) -> list[Trial]:
    """Run async_select1.py's rows (S5) in this process; return them as compare's trials."""
    import async_select1 as s5

    pg = settings.pg
    argv = ["--reps", str(settings.reps), "--duration", str(settings.duration)]
    argv += ["--warmup", str(settings.warmup), "--host", str(pg.get("host", "127.0.0.1"))]
    argv += ["--port", str(pg.get("port", 5432)), "--user", str(pg.get("user", "postgres"))]
    argv += ["--dbname", str(pg.get("dbname", "test"))]
    rows = [row for row in s5.ROWS if row.name not in table.skipped]
    raw = asyncio.run(s5.run_all(s5.parse_args(argv), rows))
    return [asyncio_trial(trial) for trial in raw]


def asyncio_trial(raw: Any) -> Trial:
    """Convert one of async_select1's trials (its CPU rates measured between ticks)."""
    rates = raw.rates() if raw.error is None else {}
    cpu = rates.get("cpu_us_per_op", float("nan")) * raw.ops / 1e6
    switches = rates.get("switches_per_op", float("nan")) * raw.ops
    trial = Trial(S5, raw.row, raw.rep, raw.window, raw.counts, raw.waits, raw.latencies)
    trial.cpu, trial.switches, trial.error = cpu, switches, raw.error
    return trial


def run_green(settings: Settings, tables: Sequence[Table], endpoints: Endpoints) -> list[Trial]:
    """Run the green scenarios in a monkey-patched child; return its trials (or their
    failure)."""
    rows = {t.id: [row.name for row in t.rows if row.name not in t.skipped] for t in tables}
    config = {
        "endpoints": {
            "pg": dict(endpoints.pg),
            "mysql": dict(endpoints.mysql),
            "sqlite_path": endpoints.sqlite_path,
        },
        "rows": rows,
        "reps": settings.reps,
        "warmup": settings.warmup,
        "duration": settings.duration,
    }
    script = os.path.join(HERE, "compare_green.py")
    count = sum(len(names) for names in rows.values())
    limit = 120 + settings.reps * count * (settings.duration + settings.warmup + 5)
    try:
        done = subprocess.run(
            [sys.executable, script, json.dumps(config)],
            stdout=subprocess.PIPE,
            text=True,
            timeout=limit,
            check=True,
        )
        return [Trial.from_json(item) for item in json.loads(done.stdout)["trials"]]
    except (subprocess.SubprocessError, ValueError, KeyError) as exc:
        error = f"green child process failed: {' '.join(str(exc).split())[:150]}"
        return [
            Trial(sid, row, rep, error=error)
            for rep in range(settings.reps)
            for sid, names in rows.items()
            for row in names
        ]


def sqlite_file(directory: str) -> str:
    """Create an empty SQLite database in ``directory``; return its path."""
    path = os.path.join(directory, "compare.sqlite3")
    sqlite3.connect(path).close()
    return path


def run_all(settings: Settings, tables: dict[str, Table], directory: str) -> list[Trial]:
    """Run every chosen scenario; return all the trials."""
    endpoints = Endpoints(settings.pg, settings.mysql, sqlite_file(directory))
    threaded = [s for s in scenarios_of(settings) if s.id in settings.scenarios]
    trials = run_threads(settings, threaded, endpoints, tables)
    if S5 in tables:
        trials += run_asyncio(settings, tables[S5])
    green = [tables[s.id] for s in compare_green.SCENARIOS if s.id in tables]
    if green:
        trials += run_green(settings, green, endpoints)
    return trials


# -- the report -------------------------------------------------------------------------------


def version_of(distribution: str) -> str:
    """Return an installed distribution's version, or 'not installed'."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def source_state() -> str:
    """Name the dbapi_pool sources measured: the commit, and a hash of uncommitted edits."""
    from async_select1 import source_revision

    revision = source_revision()
    if not revision.endswith("+dirty"):
        return revision
    try:
        diff = subprocess.run(
            ["git", "-C", HERE, "diff", "HEAD", "--", "../src"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return revision
    return f"{revision} (diff sha1 {hashlib.sha1(diff).hexdigest()[:10]})"


def machine_line() -> str:
    """Describe the machine, Python, the drivers and the peers in one line."""
    versions = ", ".join(f"{name} {version_of(name)}" for name in PEERS)
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores, load {load}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"dbapi_pool src {source_state()}; {versions}"
    )


def build_tables(settings: Settings) -> dict[str, Table]:
    """Return the chosen scenarios' tables, in order."""
    every = {s.id: table_of(s) for s in (*scenarios_of(settings), *compare_green.SCENARIOS)}
    if S5 in settings.scenarios:
        every[S5] = asyncio_table()
    return {sid: every[sid] for sid in settings.scenarios}


def report(
    settings: Settings, tables: dict[str, Table], trials: list[Trial], header: dict[str, Any]
) -> int:
    """Print the tables and verdicts, write the JSON and PNG; return the exit status."""
    summaries = {sid: summaries_of(table, trials) for sid, table in tables.items()}
    verdicts = [v for sid, t in tables.items() for v in verdicts_of(t, trials, summaries[sid])]
    print(f"date: {header['date']}\n{header['machine']}\n{header['workload']}\n{LEGEND}\n")
    for sid, table in tables.items():
        print(render(table, summaries[sid], verdicts) + "\n")
    print("targets (from the issue; ratios paired within each repetition):")
    for v in verdicts:
        print(f"  {verdict_text(v)}")
    if settings.json_path:
        data = {**header, "scenarios": [json_table(t, summaries[t.id]) for t in tables.values()]}
        write_json(settings.json_path, {**data, "targets": verdicts})
    if settings.png_path:
        title = f"dbapi-pool vs peers, {header['date']} ({header['workload']})"
        problem = write_png(settings.png_path, list(tables.values()), summaries, verdicts, title)
        if problem:
            print(problem, file=sys.stderr)
    failed = [s["row"] for rows in summaries.values() for s in rows if not s["reps_ok"]]
    return 1 if failed else 0


def json_table(table: Table, summaries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Return a table's description and summaries as plain data."""
    return {
        "id": table.id,
        "title": table.title,
        "workers": table.workers,
        "size": table.size,
        "ideal_ops_per_s": table.ideal,
        "rows": {row.name: row.label for row in table.rows},
        "skipped": table.skipped,
        "summary": [{k: v for k, v in s.items() if k != "errors" or v} for s in summaries],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the tables; return the exit status."""
    settings = parse_args(argv)
    tables = build_tables(settings)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    clock = time.perf_counter()
    header: dict[str, Any] = {
        "date": started,
        "machine": machine_line(),
        "workload": f"{settings.reps} reps x {settings.duration:g} s "
        f"(+{settings.warmup:g} s warm-up), rows interleaved; SELECT 1, autocommit sessions",
    }
    print(f"{started}  {header['workload']}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="compare-") as directory:
        trials = run_all(settings, tables, directory)
    header["elapsed_s"] = round(time.perf_counter() - clock, 1)
    print(f"done in {header['elapsed_s']:.0f} s", file=sys.stderr)
    return report(settings, tables, trials, header)


if __name__ == "__main__":
    sys.exit(main())
