"""Draw ``results.png`` from ``results.json`` (written by ``run.py``): needs matplotlib.

Usage: ``python benchmarks/web/chart.py [results.json] [results.png]``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent


def series(rows: list[dict[str, Any]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """Return, per variant, the connection counts and the median of ``key`` at each."""
    out: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        if "error" in row or row.get(key) is None:
            continue
        label = f"{row['server']}/{row['pool']}"
        out.setdefault(label, {}).setdefault(row["connections"], []).append(row[key])
    return {
        label: (sorted(points), [statistics.median(points[c]) for c in sorted(points)])
        for label, points in out.items()
    }


def draw(source: Path, target: Path) -> None:
    """Plot requests/s and p99 latency against connections, one line per variant."""
    data = json.loads(source.read_text())
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for axis, key, title in (
        (axes[0], "rps", "requests/s (higher is better)"),
        (axes[1], "p99_ms", "p99 latency, ms (lower is better)"),
    ):
        for label, (xs, ys) in series(data["rows"], key).items():
            style = "-" if label.split("/")[1].startswith("dbapi_pool") else "--"
            axis.plot(xs, ys, style, marker="o", label=label)
        axis.set_xscale("log")
        axis.set_xlabel("wrk connections")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=8)
    meta = data["runs"][0]
    fig.suptitle(
        f"pool size 8, {meta['settings']['workers']} gevent worker(s), 1 uvicorn worker,"
        f" {meta['started']}, {meta['machine']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(target, dpi=100)


if __name__ == "__main__":
    draw(
        Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json",
        Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "results.png",
    )
