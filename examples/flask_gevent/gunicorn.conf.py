"""gunicorn settings of the Flask example: 2 gevent workers, one pool each.

    gunicorn -c examples/flask_gevent/gunicorn.conf.py examples.flask_gevent.app:app

The pool is made in ``post_worker_init``: after the fork, and after the gevent worker
monkey-patched the process (so the pool picks its gevent backend), before the first
request. ``--bind``, ``--workers`` etc. on the command line win over these values.
"""

from __future__ import annotations

import os
from typing import Any

bind = os.environ.get("EXAMPLE_BIND", "127.0.0.1:8000")
workers = 2
worker_class = "gevent"
worker_connections = 1000


def post_worker_init(worker: Any) -> None:
    """Make the worker's pool (FlaskPool makes it on first use)."""
    from examples.flask_gevent.app import db

    db.pool  # noqa: B018


def worker_exit(server: Any, worker: Any) -> None:
    """Close the worker's pool: its sessions end before the process does."""
    from examples.flask_gevent.app import close_pool

    close_pool()


def child_exit(server: Any, worker: Any) -> None:
    """In prometheus_client's multiprocess mode, drop the exited worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
