"""Run by test_green.py: eventlet's offload threads work, report errors, and stop.

Prints one JSON line: what the checks saw.
"""

from __future__ import annotations

import gc
import json
import time

import eventlet

from dbapi_pool import ConnectionPool
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError


def offload_threads() -> list[str]:
    # The offload threads are made with eventlet's unpatched copy of threading, whose
    # registry is its own.
    real = eventlet.patcher.original("threading")
    return [t.name for t in real.enumerate() if t.name.startswith("dbapi-pool offload")]


def query(pool: ConnectionPool) -> None:
    with pool.connection() as conn:
        conn.cursor().execute("SELECT 1")


def main() -> None:
    db = FakeDatabase(query_delay=0.05)
    pool = ConnectionPool(db, max_size=8, backend="eventlet", offload=True)
    started = time.monotonic()

    # 8 green threads x 50 ms each, in OS threads: together if the hub kept serving.
    pile = [eventlet.spawn(query, pool) for _ in range(8)]
    for thread in pile:
        thread.wait()
    del pile
    together = time.monotonic() - started
    running = len(offload_threads())
    try:
        with pool.connection() as conn:
            conn.raw.kill()
            conn.cursor().execute("SELECT 1")
        error = None
    except OperationalError as exc:
        error = type(exc).__name__
    pool.close()
    del pool, conn
    gc.collect()
    deadline = time.monotonic() + 5
    while offload_threads() and time.monotonic() < deadline:
        eventlet.sleep(0.01)
    print(
        json.dumps(
            {
                "together": together,
                "running": running,
                "error": error,
                "left": offload_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
