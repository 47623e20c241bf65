"""Prepare this process for the green mode named on its command line: import it first.

``python SCRIPT.py MODE``: ``gevent-patched`` and ``eventlet-patched`` monkey-patch the
process here, at import; ``gevent`` and ``eventlet`` name a green backend used without
patching. Patching cannot be undone, hence one process per mode.
"""

from __future__ import annotations

import sys
import warnings

MODE = sys.argv[1] if len(sys.argv) > 1 else "gevent-patched"
warnings.filterwarnings("ignore", category=DeprecationWarning)
if MODE == "gevent-patched":
    from gevent import monkey

    monkey.patch_all()
elif MODE == "eventlet-patched":
    import eventlet

    eventlet.monkey_patch()

#: The pool's ``backend=``: ``"gevent"`` or ``"eventlet"``.
BACKEND = MODE.removesuffix("-patched")
PATCHED = MODE.endswith("-patched")

# The mode's green primitives, for the scenario scripts.
if BACKEND == "gevent":
    import gevent

    spawn = gevent.spawn
    green_sleep = gevent.sleep
else:
    import eventlet

    spawn = eventlet.spawn
    green_sleep = eventlet.sleep


def result_of(thread: object) -> object:
    """Wait for a green thread and return its result (or raise its exception)."""
    return thread.get() if BACKEND == "gevent" else thread.wait()  # type: ignore[attr-defined]


def run_green(fns: list[object]) -> list[object]:
    """Run each function in a green thread of its own; return their results in order."""
    threads = [spawn(fn) for fn in fns]
    return [result_of(thread) for thread in threads]
