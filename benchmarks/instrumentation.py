"""Measure what a listener and the metrics exporters cost the pool (issue 12), side by side.

Same method as ``before_after.py``, whose scenario code it reuses: each trial is a fresh
``python`` with ``PYTHONPATH`` set to one tree's ``src``; within each repetition every
scenario runs its configurations one after the other (the order rotates from one repetition
to the next), so a configuration and its ``off`` baseline are a few seconds apart. Per
scenario and configuration the table shows the median ops/s, its spread, the median of the
per-repetition ratios to ``off`` and the p50/p99/p99.9 latency of one operation.

The configurations add, to a pool otherwise the same:

- ``off``: nothing (the always-on timings and holder notes are there: ``before_after.py``
  against the tree before issue 12 measures those);
- ``off2``: nothing again, a control (A/A): its ratio to ``off`` is the noise of the run;
- ``listener``: a metrics listener as an application would write one, counting checkouts,
  checkins, connects and closes and summing their times under a lock;
- ``otel``: ``dbapi_pool.metrics.otel.instrument()`` with an SDK ``MeterProvider`` whose
  ``InMemoryMetricReader`` a thread reads every ``--interval`` (1 s);
- ``otel-nohist``: the same with ``histograms=False`` (no replayed histograms);
- ``prometheus``: a ``PoolCollector`` on a fresh ``CollectorRegistry`` that a thread renders
  with ``generate_latest()`` every ``--interval``;
- ``all``: the listener and both exporters.

The window must hold several collections (``--duration`` 5 s by default against a 1 s
``--interval``): an exporter's collection costs the pool's callers what it takes of the
GIL, and a window of one interval would see one collection at most, its cost partly
after the window. The last column shows each collection's time (the OpenTelemetry
exporter's grows with the checkouts since the previous one: it replays them).

An exporter whose module does not import in the tree shows as ``not available``.

    python benchmarks/instrumentation.py [--src src] [--reps 5] [--duration 5]

Run ``python benchmarks/instrumentation.py -h`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import before_after as ba

HERE = ba.HERE
#: Scenario id -> what one operation is (before_after.py's scenario code runs them).
SCENARIOS = {
    "fake.getput": "no-op driver, 1 thread: get(); put()",
    "pg.16on8": "S3.2: PostgreSQL psycopg2 SELECT 1, 16 threads on 8 connections",
    "mariadb.16on8": "MariaDB PyMySQL SELECT 1, 16 threads on 8 connections",
    "async.64on8": "no-op driver, asyncio, 64 tasks on 8: async with ...: await execute()",
}
#: Configuration -> the instrumentation it adds.
CONFIGS = {
    "off": (),
    "off2": (),
    "listener": ("listener",),
    "otel": ("otel",),
    "otel-nohist": ("otel-nohist",),
    "prometheus": ("prometheus",),
    "all": ("listener", "otel", "prometheus"),
}


# --- the child: one scenario with one configuration ----------------------------------------


class MetricsListener:
    """Count a pool's checkouts, checkins, connects and closes and sum their times, as an
    application's metrics listener would (under a lock: listeners run in many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"checkout": 0, "checkin": 0, "connect": 0, "close": 0}
        self.seconds = {"waited": 0.0, "held": 0.0, "connecting": 0.0}

    def on_checkout(self, pool: Any, conn: Any, waited: float) -> None:
        """Count a checkout and the time it waited."""
        with self._lock:
            self.counts["checkout"] += 1
            self.seconds["waited"] += waited

    def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
        """Count a checkin and the time the connection was held."""
        with self._lock:
            self.counts["checkin"] += 1
            self.seconds["held"] += held

    def on_connect(self, pool: Any, conn: Any, seconds: float) -> None:
        """Count a new connection and the time it took."""
        with self._lock:
            self.counts["connect"] += 1
            self.seconds["connecting"] += seconds

    def on_close(self, pool: Any, conn: Any, reason: str) -> None:
        """Count a closed connection."""
        with self._lock:
            self.counts["close"] += 1


class Collector:
    """Call ``collect`` once now (an exporter starts with the application: its first
    collection has nothing of the trial to catch up on), then every ``interval`` seconds in
    a thread of its own, as an exporter's reader or a scraped endpoint would; keep how many
    calls the thread made and how long they took."""

    def __init__(self, collect: Callable[[], Any], interval: float) -> None:
        self.collect, self.interval = collect, interval
        self.calls, self.seconds = 0, 0.0
        collect()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            t0 = time.perf_counter()
            self.collect()
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def stop(self) -> None:
        """Stop the thread (after its current call)."""
        self._stop.set()
        self._thread.join()


def _otel(
    pool: Any, interval: float, histograms: bool = True
) -> tuple[Collector, Callable[[], None]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from dbapi_pool.metrics.otel import instrument

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    if histograms:
        handle = instrument(pool, meter_provider=provider)
    else:  # the option came with the cost measured here
        handle = instrument(pool, meter_provider=provider, histograms=False)

    def check_and_stop() -> None:
        data = reader.get_metrics_data()
        if data is None or not data.resource_metrics:
            raise RuntimeError("the OpenTelemetry reader got no metrics from the pool")
        handle.uninstrument()
        provider.shutdown()

    return Collector(reader.get_metrics_data, interval), check_and_stop


def _prometheus(pool: Any, interval: float) -> tuple[Collector, Callable[[], None]]:
    from prometheus_client import CollectorRegistry, generate_latest

    from dbapi_pool.metrics.prometheus import PoolCollector

    registry = CollectorRegistry()
    collector = PoolCollector(pool)
    registry.register(collector)

    def check_and_stop() -> None:
        if pool.name.encode() not in generate_latest(registry):
            raise RuntimeError("the Prometheus registry exported nothing of the pool")
        registry.unregister(collector)
        collector.close()

    return Collector(lambda: generate_latest(registry), interval), check_and_stop


def preparer(parts: Sequence[str], interval: float) -> ba.Prepare:
    """Return what instruments a filled pool with ``parts`` and, after the trial, checks
    that each part saw the pool, removes it and reports the collections' count and time."""

    def prepare(pool: Any) -> Callable[[], dict[str, Any]]:
        listener = MetricsListener() if "listener" in parts else None
        if listener:
            pool.add_listener(listener)
        exporters = [
            make(pool, interval)
            for name, make in (
                ("otel", _otel),
                ("otel-nohist", lambda p, i: _otel(p, i, histograms=False)),
                ("prometheus", _prometheus),
            )
            if name in parts
        ]

        def finish() -> dict[str, Any]:
            for collector, _ in exporters:
                collector.stop()
            for _, check_and_stop in exporters:
                check_and_stop()
            if listener:
                pool.remove_listener(listener)
                if not listener.counts["checkout"]:
                    raise RuntimeError("the listener saw no checkout")
            calls = sum(c.calls for c, _ in exporters)
            spent = sum(c.seconds for c, _ in exporters)
            return {"collects": calls, "collect_ms": spent / calls * 1e3 if calls else ba.nan}

        return finish

    return prepare


def probe() -> None:
    """Print, as JSON, why each instrumentation part cannot be used in this tree (or null)."""
    modules = {
        "listener": ["dbapi_pool.listeners"],
        "otel": ["opentelemetry.sdk.metrics", "dbapi_pool.metrics.otel"],
        "otel-nohist": ["opentelemetry.sdk.metrics", "dbapi_pool.metrics.otel"],
        "prometheus": ["prometheus_client", "dbapi_pool.metrics.prometheus"],
    }
    missing: dict[str, str | None] = {}
    for part, names in modules.items():
        missing[part] = None
        for name in names:
            try:
                __import__(name)
            except ImportError as exc:
                missing[part] = f"{type(exc).__name__}: {exc}"
                break
    print(json.dumps(missing))


# --- the parent: rotate the configurations and summarise ----------------------------------


def available(src: str) -> dict[str, str | None]:
    """Ask a fresh interpreter on ``src`` which parts import (part -> reason it does not)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.abspath(src), HERE]))
    cmd = [sys.executable, os.path.abspath(__file__), "--probe"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def plan(configs: Sequence[str], missing: dict[str, str | None]) -> dict[str, Any]:
    """Return each configuration's parts that import, or why it cannot run at all."""
    planned: dict[str, Any] = {}
    for config in configs:
        parts = CONFIGS[config]
        usable = tuple(p for p in parts if not missing[p])
        if parts and not usable:
            planned[config] = f"not available ({missing[parts[0]]})"
        else:
            planned[config] = usable
    return planned


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if x != x else f"{x:,.{digits}f}"


def _row(scenario: str, label: str, results: list[dict[str, Any]], base: list[Any]) -> str:
    """Return one table row: medians over the repetitions and paired ratios to ``off``."""
    med = ba.median
    ops = [r["ops"] for r in results]
    ratios = [r["ops"] / b["ops"] for r, b in zip(results, base, strict=True)]
    added = [1e6 / r["ops"] - 1e6 / b["ops"] for r, b in zip(results, base, strict=True)]
    p99r = [r["p99"] / b["p99"] for r, b in zip(results, base, strict=True)]
    collects = [r.get("collects", 0) for r in results]
    cells = [
        scenario,
        label,
        f"{med(ops):,.0f}",
        f"{(max(ops) - min(ops)) / med(ops):.0%}",
        f"{med(ratios):.3f}",
        f"{min(ratios):.2f}-{max(ratios):.2f}",
        f"{med(added):+.2f}",
        _fmt(med([r["p50"] for r in results])),
        _fmt(med([r["p99"] for r in results])),
        _fmt(med([r["p999"] for r in results])),
        f"{med(p99r):.2f}",
        f"{sum(collects)} ({_fmt(med([r['collect_ms'] for r in results]), 2)} ms)"
        if any(collects)
        else "-",
    ]
    return "| " + " | ".join(cells) + " |"


HEAD = (
    "| scenario | config | ops/s | spread | ÷off | (min-max) | Δ µs/op | p50 µs | p99 µs "
    "| p99.9 µs | p99 ÷off | collects (ms each) |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def summarise(runs: dict[str, dict[str, list[Any]]], planned: dict[str, Any]) -> str:
    """Return the markdown table, scenario by scenario, configuration by configuration."""
    lines = [HEAD]
    for scenario, by_config in runs.items():
        for config, why in planned.items():
            full = CONFIGS[config]
            label = config
            if isinstance(why, str):
                lines.append(f"| {scenario} | {config} | {why} |" + " |" * 9)
                continue
            if why != full:
                label += f" (= {'+'.join(why) or 'off'}: the rest not available)"
            lines.append(_row(scenario, label, by_config[config], by_config["off"]))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--src", default=os.path.join(HERE, "..", "src"), help="the tree's src directory")
    add("--reps", type=int, default=5, help="repetitions (the order of configs rotates)")
    add("--warmup", type=float, default=0.2, help="unmeasured seconds before each window")
    add("--duration", type=float, default=5.0, help="measured seconds per trial")
    add("--interval", type=float, default=1.0, help="seconds between exporter collections")
    add("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenario ids")
    add("--configs", default=",".join(CONFIGS), help="comma-separated configurations")
    add("--json", dest="json_path", metavar="PATH", help="write every trial's result to PATH")
    add("--child", help=argparse.SUPPRESS)
    add("--parts", default="", help=argparse.SUPPRESS)
    add("--probe", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _header(args: argparse.Namespace) -> list[str]:
    rev = subprocess.run(
        ["git", "-C", os.path.abspath(args.src), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        f"load: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; "
        f"python {sys.version.split()[0]}",
        f"src: {os.path.abspath(args.src)} ({rev or 'not a git tree'})",
        f"{args.reps} reps x {args.duration} s (+{args.warmup} s warm-up), configurations "
        f"rotating; exporters collected every {args.interval} s",
        "ops/s and latency (µs, one operation) are medians over reps; ÷off is the median of",
        "per-rep ratios to off (min-max beside it); Δ µs/op = median of 1/ops - 1/ops(off);",
        "spread = (max - min) / median",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Rotate the configurations over every scenario and repetition; print the table."""
    args = parse_args(argv)
    if args.probe:
        probe()
        return
    if args.child:
        prepare = preparer(args.parts.split(",") if args.parts else [], args.interval)
        print(json.dumps(ba.run_scenario(args.child, args.warmup, args.duration, prepare)))
        return
    planned = plan(args.configs.split(","), available(args.src))
    if "off" not in planned:
        raise SystemExit("--configs must include off, the baseline of the ratios")
    runnable = [c for c, parts in planned.items() if not isinstance(parts, str)]
    runs = {s: {c: [] for c in runnable} for s in args.scenarios.split(",")}
    started = time.monotonic()
    for rep in range(args.reps):
        order = runnable[rep % len(runnable) :] + runnable[: rep % len(runnable)]
        for scenario, by_config in runs.items():
            for config in order:
                extra = ["--parts", ",".join(planned[config]), "--interval", str(args.interval)]
                result = ba.trial(args.src, scenario, args, __file__, extra)
                by_config[config].append(result)
        elapsed = time.monotonic() - started
        print(f"rep {rep + 1}/{args.reps} done, {elapsed:.0f} s", file=sys.stderr)
    print("\n".join(_header(args)) + "\n")
    print(summarise(runs, planned))
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"args": vars(args), "planned": planned, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
