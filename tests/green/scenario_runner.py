"""Run a green scenario script in a subprocess (monkey-patching cannot be undone) and read
the JSON lines it prints: one result per case."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
#: The green modes: monkey-patched, or a green backend used without patching.
MODES = ["gevent-patched", "eventlet-patched", "gevent", "eventlet"]


def scenario_lines(script: str, mode: str, timeout: float = 300) -> list[dict[str, Any]]:
    """Run ``script MODE``; fail with its output unless it exits 0; return its results."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(HERE / script), mode],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE.parent.parent,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
