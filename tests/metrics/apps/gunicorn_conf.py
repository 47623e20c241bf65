"""gunicorn settings of the test: multiprocess mode's bookkeeping of exited workers."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """Drop the exited worker's live gauges (its counters stay in the totals)."""
    multiprocess.mark_process_dead(worker.pid)
