"""Drive the web benchmark: each pool behind a small app, loaded by wrk (see README.md).

    /work/venv/bin/python benchmarks/web/run.py                 # all variants, ~6 min a rep
    /work/venv/bin/python benchmarks/web/run.py --duration 2 --warmup 1 --connections 64

For each repetition, each number of connections and each variant (interleaved), the driver
starts the variant's server fresh on a free loopback port, warms it up with wrk, then runs
the measured wrk while a thread samples the variant's sessions in ``pg_stat_activity``
every 100 ms; at the highest connection count a second wrk loads ``/health`` alongside.
The server is always stopped (its process group gets SIGTERM, then SIGKILL). The table
goes to stdout (markdown), the raw numbers to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VENV_BIN = Path(sys.executable).parent
LUA = HERE / "random_item.lua"
HEALTH_LUA = HERE / "health_probe.lua"
DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SCHEMA = "bench_web"
#: (server, pool) in the order they are interleaved.
VARIANTS = [
    ("gevent", "dbapi_pool"),
    ("gevent", "sa_queuepool"),
    ("gevent", "psycopg2_threaded"),
    ("gevent", "dbapi_pool_sa"),
    ("asyncio", "dbapi_pool"),
    ("asyncio", "psycopg_pool"),
    ("asyncio", "asyncpg"),
]


def setup_items(dsn: str) -> None:
    """Create ``bench_web.items(id, name)`` with ids 1 to 1000 if it is not there."""
    conn = psycopg2.connect(dsn, application_name="benchweb-setup")
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {SCHEMA}.items (id int PRIMARY KEY, name text)"
            )
            cursor.execute(
                f"INSERT INTO {SCHEMA}.items SELECT i, 'item ' || i"
                " FROM generate_series(1, 1000) AS i ON CONFLICT (id) DO NOTHING"
            )
            cursor.execute(f"ANALYZE {SCHEMA}.items")
    finally:
        conn.close()


def free_port() -> int:
    """Return a TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_command(server: str, port: int, workers: int) -> list[str]:
    """Return the command line serving ``server``'s app on ``port``."""
    if server == "gevent":
        return [
            str(VENV_BIN / "gunicorn"),
            *("-k", "gevent", "-w", str(workers), "--worker-connections", "4000"),
            *("--backlog", "4096", "-b", f"127.0.0.1:{port}", "--log-level", "warning"),
            "benchmarks.web.apps.gevent_app:app",
        ]
    return [
        str(VENV_BIN / "uvicorn"),
        "benchmarks.web.apps.asyncio_app:app",
        *("--host", "127.0.0.1", "--port", str(port), "--backlog", "4096"),
        *("--no-access-log", "--log-level", "warning"),
    ]


def wait_healthy(url: str, process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    """Return once ``url`` answers 200; raise if the server exits or takes too long."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within} s")


@contextmanager
def running_server(server: str, pool: str, app_name: str, workers: int, log: Path) -> Iterator[str]:
    """Start the variant's server, yield its base URL, and always stop it."""
    port = free_port()
    env = dict(os.environ, BENCH_VARIANT=pool, BENCH_APP_NAME=app_name, BENCH_DSN=DSN)
    env["PYTHONPATH"] = f"{ROOT / 'src'}{os.pathsep}{ROOT}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            server_command(server, port, workers),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base + "/health", process)
        yield base
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class SessionSampler(threading.Thread):
    """Count the sessions whose application_name starts with a prefix, every 100 ms."""

    def __init__(self, prefix: str) -> None:
        super().__init__(daemon=True)
        self.prefix = prefix
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        """Sample until stopped, keeping the peak."""
        conn = psycopg2.connect(DSN, application_name="benchweb-sampler")
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                while not self._done.wait(0.1):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                        (self.prefix + "%",),
                    )
                    self.peak = max(self.peak, cursor.fetchone()[0])
        finally:
            conn.close()

    def stop(self) -> int:
        """Stop sampling and return the peak."""
        self._done.set()
        self.join()
        return self.peak


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _ms(text: str) -> float:
    """Return a wrk duration (``1.23ms``, ``850.00us``, ``1.02s``) in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Return requests/s, p50/p99 (ms), the request count and the errors of wrk's output."""
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    connect, read, write, timeout = (int(n) for n in sockets.groups()) if sockets else (0,) * 4
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": _ms(percentiles["50"]) if "50" in percentiles else None,
        "p99_ms": _ms(percentiles["99"]) if "99" in percentiles else None,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": connect + read + write,
        "timeouts": timeout,
    }


def wrk_command(url: str, connections: int, duration: float, script: Path) -> list[str]:
    """Return a wrk command line (2 threads, or 1 below 2 connections)."""
    threads = 2 if connections >= 2 else 1
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s"]
    command += ["--timeout", "15s", "--latency", "-s", str(script)]
    return [*command, url]


def measure_point(
    variant: tuple[str, str], connections: int, args: argparse.Namespace, health: bool
) -> dict[str, Any]:
    """Serve one variant fresh, warm it up, measure it; return the row."""
    server, pool = variant
    app_name = f"bw{os.getpid()}-{server}-{pool}-{connections}-{time.monotonic_ns() % 10**6}"
    row: dict[str, Any] = {"server": server, "pool": pool, "connections": connections}
    row["load_before"] = round(os.getloadavg()[0], 2)
    with running_server(server, pool, app_name, args.workers, args.log) as base:
        warm = wrk_command(base + "/", connections, args.warmup, script=LUA)
        subprocess.run(warm, capture_output=True, check=True)
        sampler = SessionSampler(app_name)
        sampler.start()
        item = subprocess.Popen(
            wrk_command(base + "/", connections, args.duration, script=LUA),
            stdout=subprocess.PIPE,
            text=True,
        )
        health_wrk = None
        if health:
            health_wrk = subprocess.Popen(
                wrk_command(base + "/health", args.health_connections, args.duration, HEALTH_LUA),
                stdout=subprocess.PIPE,
                text=True,
            )
        row.update(parse_wrk(item.communicate()[0]))
        if health_wrk is not None:
            parsed = parse_wrk(health_wrk.communicate()[0])
            row["health"] = {k: parsed[k] for k in ("rps", "p50_ms", "p99_ms", "timeouts")}
        row["peak_sessions"] = sampler.stop()
    return row


def run_all(args: argparse.Namespace, first_rep: int = 1) -> list[dict[str, Any]]:
    """Run every repetition, connection count and variant, interleaved; return the rows."""
    variants = [v for v in VARIANTS if args.only is None or f"{v[0]}/{v[1]}" in args.only]
    top = max(args.connections)
    rows = []
    for rep in range(first_rep, first_rep + args.reps):
        for connections in args.connections:
            for variant in variants:
                label = f"rep {rep} c={connections} {variant[0]}/{variant[1]}"
                print(f"{label} ...", file=sys.stderr, flush=True)
                try:
                    row = measure_point(variant, connections, args, connections == top)
                except (RuntimeError, subprocess.CalledProcessError) as error:
                    row = {"server": variant[0], "pool": variant[1], "error": str(error)}
                    row["connections"] = connections
                row["rep"] = rep
                rows.append(row)
                print(f"{label}: {summary(row)}", file=sys.stderr, flush=True)
    return rows


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(row: dict[str, Any]) -> str:
    """Return one row's numbers on one line (for progress)."""
    if "error" in row:
        return f"failed: {row['error']}"
    health = row.get("health")
    text = (
        f"{row['rps']:.0f} req/s p50 {_num(row['p50_ms'])} p99 {_num(row['p99_ms'])} ms"
        f" errors {row['non2xx']}/{row['socket_errors']}/{row['timeouts']}"
        f" sessions {row['peak_sessions']}"
    )
    if health:
        text += f" /health p50 {_num(health['p50_ms'], 2)} p99 {_num(health['p99_ms'], 2)} ms"
    return text


def _cell(rows: list[dict[str, Any]], key: str, digits: int) -> str:
    """Return the median over repetitions, and the values when there are several."""
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return "-"
    text = _num(statistics.median(values), digits)
    return text if len(values) == 1 else f"{text} ({'/'.join(_num(v, digits) for v in values)})"


def table(rows: list[dict[str, Any]]) -> str:
    """Return the markdown table: one line per connection count and variant."""
    lines = [
        "| conns | variant | req/s | p50 ms | p99 ms | non-2xx | sock err | timeouts"
        " | peak sessions | /health p50 ms | /health p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["connections"], r["server"], r["pool"]) for r in rows})
    order = {v: i for i, v in enumerate(VARIANTS)}
    for conns, server, pool in sorted(keys, key=lambda k: (k[0], order[(k[1], k[2])])):
        group = [
            r
            for r in rows
            if (r["connections"], r["server"], r["pool"]) == (conns, server, pool)
            and "error" not in r
        ]
        health = [r["health"] for r in group if "health" in r]
        errors = [str(sum(r[k] for r in group)) for k in ("non2xx", "socket_errors", "timeouts")]
        peak = max((r["peak_sessions"] for r in group), default=0)
        lines.append(
            f"| {conns} | {server}/{pool} | {_cell(group, 'rps', 0)} | {_cell(group, 'p50_ms', 1)}"
            f" | {_cell(group, 'p99_ms', 1)} | {' | '.join(errors)} | {peak}"
            f" | {_cell(health, 'p50_ms', 2) if health else ''}"
            f" | {_cell(health, 'p99_ms', 2) if health else ''} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command line's settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256, 1000])
    parser.add_argument("--duration", type=float, default=10.0, help="measured s per point")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up s per point")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn gevent workers")
    parser.add_argument("--health-connections", type=int, default=2)
    parser.add_argument("--only", nargs="+", help="variants, e.g. gevent/dbapi_pool")
    parser.add_argument("--json", type=Path, default=HERE / "results.json")
    parser.add_argument("--append", action="store_true", help="add repetitions to --json")
    parser.add_argument("--log", type=Path, default=Path("/tmp/benchweb-servers.log"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Set up the table, run the points, print the table and write the JSON."""
    args = parse_args(argv)
    setup_items(DSN)
    old: dict[str, Any] = {"runs": [], "rows": []}
    if args.append and args.json.exists():
        old = json.loads(args.json.read_text())
    run = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "load_start": os.getloadavg(),
        "settings": {k: str(v) for k, v in vars(args).items()},
    }
    rows = old["rows"] + run_all(args, 1 + max((r["rep"] for r in old["rows"]), default=0))
    run["load_end"] = os.getloadavg()
    runs = [*old["runs"], run]
    args.json.write_text(json.dumps({"runs": runs, "rows": rows}, indent=1) + "\n")
    for each in runs:
        print(
            f"{each['started']}, {each['machine']},"
            f" load {each['load_start'][0]:.2f} -> {each['load_end'][0]:.2f}"
        )
    print(table(rows))
    return 1 if all("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
