"""The output of compare.py: one table per scenario, the targets' verdicts, JSON and a chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from compare_rows import Target
from compare_runner import PERCENTILES, SAMPLE_EVERY, Trial, median, paired_ratios, summarize


@dataclass(frozen=True)
class RowInfo:
    """Name a row of a table, say what it is, and name the row its ratio is taken to."""

    name: str
    label: str
    baseline: str


@dataclass
class Table:
    """Describe one scenario's table: its rows, targets, and rows that could not run."""

    id: str
    title: str
    workers: int
    size: int
    rows: list[RowInfo]
    timed: bool = True
    ideal: float | None = None
    targets: tuple[Target, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)


# -- numbers ----------------------------------------------------------------------------------


def summaries_of(table: Table, trials: Sequence[Trial]) -> list[dict[str, Any]]:
    """Summarize every row of ``table`` that ran."""
    mine = [t for t in trials if t.scenario == table.id]
    return [
        summarize(mine, row.name, row.baseline, table.ideal)
        for row in table.rows
        if row.name not in table.skipped
    ]


def verdict(
    target: Target, table: Table, trials: Sequence[Trial], summary: dict[str, Any]
) -> dict[str, Any]:
    """Judge one target against the run: the paired ratio and the fairness conditions."""
    mine = [t for t in trials if t.scenario == table.id]
    ratios = paired_ratios(mine, target.row, target.reference)
    value = median(ratios)
    met = not math.isnan(value) and value >= target.at_least
    notes = []
    if target.all_served:
        served = summary.get("served_min", 0.0)
        met = met and served >= 1.0
        notes.append(f"served {served:.0%} (worst rep)")
    if target.min_jain is not None:
        jain = summary.get("jain", float("nan"))
        met = met and jain >= target.min_jain
        notes.append(f"Jain {jain:.3f} (>= {target.min_jain:g})")
    if table.ideal:
        notes.append(
            f"{summary.get('vs_ideal', float('nan')):.3f} of the ideal {table.ideal:,.0f}/s"
        )
    return {
        "scenario": table.id,
        "row": target.row,
        "reference": target.reference,
        "at_least": target.at_least,
        "value": value,
        "met": met,
        "notes": notes,
    }


def verdicts_of(
    table: Table, trials: Sequence[Trial], summaries: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Judge every target of ``table`` whose row ran."""
    by_row = {s["row"]: s for s in summaries}
    return [
        verdict(target, table, trials, by_row[target.row])
        for target in table.targets
        if target.row in by_row and target.reference in by_row
    ]


def verdict_text(v: dict[str, Any]) -> str:
    """Describe a verdict in one line."""
    status = "met" if v["met"] else "MISSED"
    notes = "; ".join(v["notes"])
    return (
        f"{v['scenario']} {v['row']} ÷ {v['reference']} = {v['value']:.3f} "
        f"(target >= {v['at_least']:g}{'; ' + notes if notes else ''}): {status}"
    )


# -- tables -----------------------------------------------------------------------------------


def fmt(value: Any, spec: str) -> str:
    """Format a number, showing '-' for a missing one (None or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return spec.format(value)


def columns(table: Table) -> list[tuple[str, str, str]]:
    """Return the (title, summary key, format) of the columns ``table`` needs."""
    cols = [("ops/s", "ops_per_s", "{:,.0f}"), ("spread", "spread_pct", "{:.0f}%")]
    cols.append(("÷base", "vs_baseline", "{:.3f}"))
    if len({row.baseline for row in table.rows}) > 1:
        cols.append(("base", "baseline", "{}"))
    if table.ideal:
        cols.append(("÷ideal", "vs_ideal", "{:.3f}"))
    for kind, title in (("wait", "wait"), ("req", "req")):
        cols += [(f"{title} {p}", f"{kind}_{p}_ms", "{:.3f}") for p, _ in PERCENTILES]
    cols += [("served", "served", "{:.0%}"), ("Jain", "jain", "{:.3f}")]
    cols += [("cpu µs/op", "cpu_us_per_op", "{:.1f}"), ("csw/op", "switches_per_op", "{:.2f}")]
    return cols


def target_cell(table: Table, row: str, verdicts: Sequence[dict[str, Any]]) -> str:
    """Return the target column's text for ``row`` of ``table`` ('' if no target applies)."""
    cells = []
    for v in verdicts:
        if v["scenario"] != table.id or v["row"] != row:
            continue
        status = "met" if v["met"] else "MISSED"
        if v["reference"].startswith("nopool"):
            cells.append(f">= {v['at_least']:g}: {status}")
        else:
            cells.append(f"{v['value']:.2f} vs {v['reference']} >= {v['at_least']:g}: {status}")
    return "; ".join(cells)


def row_cells(summary: dict[str, Any], cols: Sequence[tuple[str, str, str]]) -> list[str]:
    """Return one row's cells; baselines show '-' for waits (they never wait)."""
    cells = []
    for _title, key, spec in cols:
        value = summary[key]
        if key.startswith("wait") and summary["row"] == summary["baseline"]:
            value = None
        cells.append(fmt(value, spec))
    return cells


def body(
    table: Table,
    summaries: Sequence[dict[str, Any]],
    verdicts: Sequence[dict[str, Any]],
    cols: Sequence[tuple[str, str, str]],
) -> list[list[str] | str]:
    """Return each row's cells (name first, target last), or its one-line failure."""
    by_row = {s["row"]: s for s in summaries}
    lines: list[list[str] | str] = []
    for name in (row.name for row in table.rows):
        if name in table.skipped:
            lines.append(f"{name}  {table.skipped[name]}")
        elif not by_row[name]["reps_ok"]:
            lines.append(f"{name}  failed: {by_row[name]['errors'][0]}")
        else:
            target = target_cell(table, name, verdicts)
            lines.append([name, *row_cells(by_row[name], cols), target])
    return lines


def render(
    table: Table, summaries: Sequence[dict[str, Any]], verdicts: Sequence[dict[str, Any]]
) -> str:
    """Render one scenario's table as plain text."""
    cols = columns(table)
    head = ["row", *(title for title, _, _ in cols), "target" if table.targets else ""]
    rows = body(table, summaries, verdicts, cols)
    cells = [head, *(line for line in rows if isinstance(line, list))]
    widths = [max(len(line[i]) for line in cells) for i in range(len(head))]
    sampled = "" if table.timed else f" (wait and req: one request in {SAMPLE_EVERY} timed)"
    lines = [f"{table.id}: {table.title}{sampled}"]
    for line in [head, *rows]:
        if isinstance(line, str):
            lines.append(line)
            continue
        name, *numbers, target = line
        text = [
            name.ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(numbers, widths[1:-1], strict=True)),
        ]
        lines.append("  ".join([*text, target]).rstrip())
    for summary in summaries:
        for note in summary["notes"]:
            lines.append(f"note: {summary['row']}: {note}")
        if summary["errors"] and summary["reps_ok"]:
            count = len(summary["errors"])
            lines.append(f"note: {summary['row']}: {count} rep(s) failed: {summary['errors'][0]}")
    return "\n".join(lines)


LEGEND = """\
Medians over the repetitions. ÷base: median of (row ÷ its baseline in the same repetition);
baselines ("nopool...") give min(workers, size) workers one connection each, no pool: the
physical limit. spread: (max - min) / median of ops/s. wait: ms from asking for a connection
to having it (- for baselines; for connect rows, the connect itself); req: ms from asking for
a connection to having returned it (the whole request); p50/p99/p99.9: each repetition's
percentile, then the median over repetitions (S1: one request in 32 timed). served: share of
workers that completed >= 1 request in the window; Jain: fairness of per-worker counts
(1 = equal). cpu µs/op: CPU of the whole process (all threads; not the database server) per
request; csw/op: its context switches (voluntary + involuntary) per request."""


# -- JSON -------------------------------------------------------------------------------------


def without_nan(value: Any) -> Any:
    """Return ``value`` with every NaN replaced by None (JSON has no NaN), floats rounded."""
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    return value


def write_json(path: str, report: dict[str, Any]) -> None:
    """Write the summary report (no raw samples) to ``path``."""
    with open(path, "w", encoding="utf-8") as out:
        json.dump(without_nan(report), out, indent=1, ensure_ascii=False)
        out.write("\n")
