"""The chart of compare.py: throughput ÷ baseline per pool per scenario, and S2's waits.

matplotlib is optional: without it, ``write_png`` returns why no chart was written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from compare_report import Table

OURS = "#1f77b4"
PEER = "#9a9a9a"
NO_POOL = "#d9d9d9"
TARGET = "#d62728"
#: Where notes about targets against a peer start (right of every ratio bar).
NOTE_X = 2.6


def colour(row: str) -> str:
    """Colour dbapi_pool's rows (and its compat module's), the peers, and connect-per-request."""
    if row.startswith(("dbapi_pool", "compat")):
        return OURS
    return NO_POOL if row == "connect" else PEER


def bars(
    tables: Sequence[Table], summaries: Mapping[str, Sequence[dict[str, Any]]]
) -> list[tuple[str, str, float] | None]:
    """Return (scenario, row, ratio) per bar, ``None`` between scenarios; baselines left out."""
    out: list[tuple[str, str, float] | None] = []
    for table in tables:
        rows = [
            (table.id, s["row"], s["vs_baseline"])
            for s in summaries.get(table.id, [])
            if s["row"] != s["baseline"] and is_number(s["vs_baseline"])
        ]
        if rows:
            out += [*rows, None]
    return out[:-1]


def is_number(value: Any) -> bool:
    """Tell a usable positive number (not None, not NaN, above 0)."""
    return isinstance(value, float | int) and not math.isnan(value) and value > 0


def draw_ratios(
    ax: Any, items: list[tuple[str, str, float] | None], verdicts: Sequence[dict[str, Any]]
) -> None:
    """Draw one horizontal bar per (scenario, row): its ratio to its own baseline, log scale."""
    goals = {(v["scenario"], v["row"]): v for v in verdicts}
    labels, ys = [], []
    for y, item in enumerate(items):
        if item is None:
            continue
        scenario, row, ratio = item
        ax.barh(y, ratio, color=colour(row), height=0.8)
        ax.text(ratio * 1.05, y, f"{ratio:.3g}", va="center", fontsize=7)
        goal = goals.get((scenario, row))
        if goal is not None:
            note_goal(ax, y, ratio, goal)
        labels.append(f"{scenario}  {row}")
        ys.append(y)
    ax.set_yticks(ys, labels, fontsize=7)
    ax.set_ylim(len(items) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(right=40)
    plain_ticks(ax)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("ops/s ÷ the no-pool baseline of the same repetition (log scale; 1 = no pool)")
    ax.grid(axis="x", which="both", linewidth=0.3)
    legend(ax)


def plain_ticks(ax: Any) -> None:
    """Label a log axis 0.01, 0.1, 1... rather than 10^-2."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def legend(ax: Any) -> None:
    """Explain the colours and the target ticks."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Patch(color=OURS, label="dbapi_pool (and its eventlet compat module)"),
        Patch(color=PEER, label="peer pools"),
        Patch(color=NO_POOL, label="connect per request"),
        Line2D([], [], color=TARGET, linewidth=2, label="target (from the issue)"),
    ]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, fontsize=7)


def note_goal(ax: Any, y: int, ratio: float, goal: dict[str, Any]) -> None:
    """Mark a target: a tick at the goal when it is a ratio to the baseline, else a note."""
    status = "met" if goal["met"] else "missed"
    if goal["reference"].startswith("nopool"):
        ax.plot([goal["at_least"]] * 2, [y - 0.45, y + 0.45], color=TARGET, linewidth=2)
        return
    text = f"{goal['value']:.2f}x {goal['reference']} (target >= {goal['at_least']:g}x: {status})"
    ax.text(NOTE_X, y, text, va="center", fontsize=7, color=TARGET)


def draw_waits(ax: Any, summaries: Sequence[dict[str, Any]], table: Table) -> None:
    """Draw S2's wait p50 and p99 per pool (ms, log scale)."""
    rows = [s for s in summaries if s["row"] != s["baseline"] and is_number(s["wait_p99_ms"])]
    for y, s in enumerate(rows):
        ax.barh(y - 0.2, s["wait_p99_ms"], height=0.4, color=colour(s["row"]))
        ax.barh(
            y + 0.2, max(s["wait_p50_ms"], 1e-4), height=0.4, color=colour(s["row"]), alpha=0.45
        )
        served = f"p99 {s['wait_p99_ms']:.3g} ms, served {s['served']:.0%}, Jain {s['jain']:.2f}"
        ax.text(s["wait_p99_ms"] * 1.1, y - 0.2, served, va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [s["row"] for s in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xscale("log")
    ax.set_xlim(right=max(s["wait_p99_ms"] for s in rows) * 40 if rows else None)
    plain_ticks(ax)
    ax.set_xlabel(f"{table.id} wait for a connection, ms (dark: p99, light: p50; log scale)")
    ax.grid(axis="x", which="both", linewidth=0.3)


def write_png(
    path: str,
    tables: Sequence[Table],
    summaries: Mapping[str, Sequence[dict[str, Any]]],
    verdicts: Sequence[dict[str, Any]],
    title: str,
) -> str | None:
    """Draw the chart into ``path``; return why not if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no PNG written"
    items = bars(tables, summaries)
    s2 = next((t for t in tables if t.id == "S2" and summaries.get("S2")), None)
    heights = [max(3.0, 0.19 * len(items) + 1.2)] + ([2.4] if s2 else [])
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(11, sum(heights)), gridspec_kw={"height_ratios": heights}
    )
    axes = list(axes) if s2 else [axes]
    draw_ratios(axes[0], items, verdicts)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    if s2 is not None:
        draw_waits(axes[1], summaries["S2"], s2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
