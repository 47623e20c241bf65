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
