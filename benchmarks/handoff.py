"""Measure hand-off policies of dbapi_pool's threaded pool against strict FIFO, paired.

For each chosen thread scenario of compare.py (default: S1.2, S3.2, S4.pymysql), each
repetition runs the no-pool baseline and one ``ConnectionPool`` per policy (settings given as
``NAME=JSON``), in an order rotated from one repetition to the next; every trial opens a
fresh pool. Each row is then reported against the ``fifo`` row (``handoff_after=0``) of the
same repetition: throughput, and p50 / p99 / p99.9 of the checkout wait and of the whole
request, as medians of the per-repetition ratios. Run ``python benchmarks/handoff.py -h``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from compare import conninfo, machine_line, sqlite_file, variant
from compare_pools import dbapi_pool_opener
from compare_rows import NOPOOL, Endpoints, Row, Scenario, run_trial, thread_scenarios
from compare_runner import PERCENTILES, Trial, median, percentile

FIFO = "fifo"
#: Policies measured unless --policy is given: strict order, the old fixed 5 ms window,
#: and the default (whatever ``handoff_after=None`` gives).
POLICIES = (
    (FIFO, {"handoff_after": 0}),
    ("fixed5ms", {"handoff_after": 0.005}),
    ("default", {}),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--scenarios", default="S1.2,S3.2,S4.pymysql", help="comma-separated thread scenarios")
    add("--reps", type=int, default=7, help="repetitions (rows rotated in each)")
    add("--duration", type=float, default=0.5, help="measured seconds per trial")
    add("--warmup", type=float, default=0.15, help="unmeasured seconds before each window")
    add(
        "--policy",
        action="append",
        type=variant,
        default=[],
        metavar="NAME=JSON",
        help="a dbapi_pool row with these settings (repeatable; 'fifo' is always added)",
    )
    add("--json", dest="json_path", metavar="PATH", help="write per-trial percentiles to PATH")
    add("--pg", default="host=127.0.0.1 port=5432 user=postgres dbname=test", help="key=value")
    add(
        "--mysql",
        default="host=127.0.0.1 port=3306 user=root password= database=test",
        help="key=value",
    )
    return parser.parse_args(argv)


def policy_rows(scenario: Scenario, policies: Sequence[tuple[str, dict[str, Any]]]) -> list[Row]:
    """Return the scenario's baseline, then one dbapi_pool row per policy."""
    ours = scenario.row("dbapi_pool")
    rows = [scenario.row(NOPOOL)]
    for name, settings in policies:
        label = f"dbapi_pool, {settings or 'defaults'}"
        rows.append(Row(name, label, ours.driver, dbapi_pool_opener(**settings), NOPOOL))
    return rows


def run(args: argparse.Namespace, policies: Sequence[tuple[str, dict[str, Any]]]) -> list[Trial]:
    """Run every scenario's rows in each repetition, rotating their order; return the trials."""
    wanted = args.scenarios.split(",")
    scenarios = [s for s in thread_scenarios() if s.id in wanted]
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="handoff-") as directory:
        endpoints = Endpoints(conninfo(args.pg), conninfo(args.mysql), sqlite_file(directory))
        for rep in range(args.reps):
            for scenario in scenarios:
                rows = policy_rows(scenario, policies)
                shift = rep % len(rows)
                for row in rows[shift:] + rows[:shift]:
                    trial = run_trial(scenario, row, endpoints, rep, args.warmup, args.duration)
                    shown = trial.error or f"{trial.ops_per_s:,.0f} ops/s"
                    print(
                        f"  rep {rep + 1} {scenario.id:<11} {row.name:<12} {shown}", file=sys.stderr
                    )
                    trials.append(trial)
    return trials


def tails(trials: Sequence[Trial]) -> dict[tuple[str, str, int], dict[str, float]]:
    """Return each trial's throughput and percentiles (ms), keyed by (scenario, row, rep)."""
    out = {}
    for t in trials:
        if t.error is not None:
            continue
        values = {"ops_per_s": t.ops_per_s}
        for kind, samples in (("wait", sorted(t.waits)), ("req", sorted(t.latencies))):
            for name, q in PERCENTILES:
                values[f"{kind}_{name}_ms"] = percentile(samples, q) * 1e3
        out[(t.scenario, t.row, t.rep)] = values
    return out


def summary(
    scenario: str, row: str, reps: int, by: dict[tuple[str, str, int], dict[str, float]]
) -> dict[str, Any]:
    """Reduce one row's trials: medians, and ratios to fifo paired by repetition."""
    mine = [by[(scenario, row, rep)] for rep in range(reps) if (scenario, row, rep) in by]
    pairs = [
        (by[(scenario, row, rep)], by[(scenario, FIFO, rep)])
        for rep in range(reps)
        if (scenario, row, rep) in by and (scenario, FIFO, rep) in by
    ]
    base = [
        (by[(scenario, row, rep)], by[(scenario, NOPOOL, rep)])
        for rep in range(reps)
        if (scenario, row, rep) in by and (scenario, NOPOOL, rep) in by
    ]
    out: dict[str, Any] = {"row": row, "reps_ok": len(mine)}
    out["vs_nopool"] = median([a["ops_per_s"] / b["ops_per_s"] for a, b in base])
    out["ops_vs_fifo"] = median([a["ops_per_s"] / b["ops_per_s"] for a, b in pairs])
    for key in mine[0] if mine else ():
        out[key] = median([m[key] for m in mine])
        if key != "ops_per_s":
            ratios = [a[key] / b[key] for a, b in pairs if b[key] > 0]
            out[key.removesuffix("_ms") + "_vs_fifo"] = median(ratios)
    return out


COLUMNS = (
    ("ops/s", "ops_per_s", "{:,.0f}"),
    ("÷nopool", "vs_nopool", "{:.3f}"),
    ("÷fifo", "ops_vs_fifo", "{:.3f}"),
    *((f"wait {n}", f"wait_{n}_ms", "{:.3f}") for n, _ in PERCENTILES),
    *((f"req {n}", f"req_{n}_ms", "{:.3f}") for n, _ in PERCENTILES),
    *((f"req {n} ÷fifo", f"req_{n}_vs_fifo", "{:.2f}") for n, _ in PERCENTILES),
    ("wait p99 ÷fifo", "wait_p99_vs_fifo", "{:.2f}"),
)


def render(scenario: str, rows: Sequence[dict[str, Any]]) -> str:
    """Render one scenario's rows as a plain-text table."""

    def cell(value: Any, spec: str) -> str:
        return "-" if value is None or value != value else spec.format(value)

    head = ["row", *(title for title, _, _ in COLUMNS)]
    body = [[r["row"], *(cell(r[key], spec) for _, key, spec in COLUMNS)] for r in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = [scenario]
    for line in [head, *body]:
        cells = [
            line[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the policies and print one table per scenario."""
    args = parse_args(argv)
    policies = [(n.removeprefix("dbapi_pool[").removesuffix("]"), s) for n, s in args.policy]
    if not policies:
        policies = list(POLICIES)
    if FIFO not in dict(policies):
        policies.insert(0, POLICIES[0])
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"{started}  {args.reps} reps x {args.duration:g} s", file=sys.stderr)
    trials = run(args, policies)
    print(f"date: {started}\n{machine_line()}")
    print(f"{args.reps} reps x {args.duration:g} s (+{args.warmup:g} s warm-up), rows rotated")
    print("policies: " + "; ".join(f"{n}={json.dumps(s)}" for n, s in policies))
    print("medians over reps; ÷fifo: median of the per-rep ratios to the fifo row; ms\n")
    report = []
    by = tails(trials)
    for sid in args.scenarios.split(","):
        rows = [summary(sid, name, args.reps, by) for name in (NOPOOL, *(n for n, _ in policies))]
        print(render(sid, rows) + "\n")
        report.append({"scenario": sid, "rows": rows})
    if args.json_path:
        raw = [
            {"scenario": t.scenario, "row": t.row, "rep": t.rep, "error": t.error}
            | by.get((t.scenario, t.row, t.rep), {})
            for t in trials
        ]
        with open(args.json_path, "w", encoding="utf-8") as out:
            json.dump({"date": started, "summary": report, "trials": raw}, out, indent=1)
    return 0 if all(t.error is None for t in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
