"""Run an engine over dbapi_pool.sqlalchemy.Pool under gevent; print one JSON line.

A subprocess of test_sqlalchemy.py: monkey-patching cannot be undone.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import psycogreen.gevent  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from dbapi_pool.sqlalchemy import Pool  # noqa: E402

psycogreen.gevent.patch_psycopg()
SLEEP = 0.2
TASKS = 12


def main() -> None:
    """Run TASKS sleeping queries over 3 connections; report time, backend, sessions."""
    app = f"sqla-gevent-{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1/test",
        poolclass=Pool,
        pool_size=3,
        max_overflow=0,
        connect_args={"application_name": app},
    )
    pids: set[int] = set()

    def task() -> None:
        with engine.connect() as conn:
            pids.add(
                conn.execute(
                    sa.text(f"select pg_backend_pid() from pg_sleep({SLEEP})")
                ).scalar_one()
            )

    start = time.monotonic()
    gevent.joinall([gevent.spawn(task) for _ in range(TASKS)], raise_error=True)
    elapsed = time.monotonic() - start
    result = {"elapsed": elapsed, "backend": engine.pool.dbapi_pool.backend, "pids": len(pids)}
    engine.dispose()
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
