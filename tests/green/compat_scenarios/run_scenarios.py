"""Launch the eventlet_db_pool scenarios in a process of their own; print their JSON.

    python run_scenarios.py [--patched] --silent PORT --delayed PORT --dead PORT

``--patched`` calls ``eventlet.monkey_patch()`` before anything else is imported (it cannot
be undone, hence a process of its own).
"""

import importlib
import sys
import warnings

# Eventlet warns at import that it is deprecated (an EventletDeprecationWarning).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

if "--patched" in sys.argv:
    import eventlet

    eventlet.monkey_patch()

args = sys.argv[1:]
ports = {name: int(args[args.index(f"--{name}") + 1]) for name in ("silent", "delayed", "dead")}
importlib.import_module("eventlet_db_pool_scenarios").main(ports)
