"""Soak: 32 threads for 30 s on PostgreSQL while backends are killed and the server restarts.

Afterwards: no leaked slot, never more than ``max_size`` sessions on the server, every call
either worked or raised a pool or driver error within its bound, and the pool at full
strength once the server is back. Bounded: about 35 s.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg2
import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.errors import PoolError

from .servers import PrivatePostgres

SOAK_SECONDS = 30.0
THREADS = 32
MAX_SIZE = 8
TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
#: A call may wait for a connection, then connect, then run its query: generous bound.
CALL_BOUND = TIMEOUT + CONNECT_TIMEOUT + 10.0


class Tally:
    """Collect what the workers saw, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.slowest = 0.0
        self.unexpected: list[BaseException] = []

    def record(self, outcome: str, took: float, error: BaseException | None = None) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            self.slowest = max(self.slowest, took)
            if error is not None and not isinstance(error, (PoolError, psycopg2.Error)):
                self.unexpected.append(error)


def worker(pool: ConnectionPool, tally: Tally, stop: float) -> None:
    while time.monotonic() < stop:
        started = time.monotonic()
        try:
            with pool.connection() as conn:
                cur = conn.cursor()
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
                cur.close()
            tally.record("ok", time.monotonic() - started)
        except Exception as exc:
            tally.record(type(exc).__name__, time.monotonic() - started, exc)
            time.sleep(0.01)


def chaos(pg: PrivatePostgres, app: str, stop: float, log: list[str]) -> None:
    rnd = random.Random(20261130)
    while time.monotonic() < stop - 3:
        time.sleep(rnd.uniform(0.5, 2.0))
        try:
            if rnd.random() < 0.25:
                pg.restart()
                log.append("restart")
            else:
                log.append(f"killed {len(pg.kill_backends(app))}")
        except Exception as exc:  # the monitor itself may die with a restart
            log.append(f"chaos error {type(exc).__name__}")
    if not pg.running:
        pg.start()


def sampler(pg: PrivatePostgres, app: str, stop: float, peak: list[int]) -> None:
    while time.monotonic() < stop:
        try:
            peak[0] = max(peak[0], pg.count_connections(app))
        except Exception:  # restarting
            pass
        time.sleep(0.05)


def run_all(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target, daemon=True) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOAK_SECONDS + 60)
        assert not thread.is_alive(), "a soak thread never finished"


@pytest.mark.postgres
def test_soak_kills_and_restarts(
    pg: PrivatePostgres, app_name: str, make_pool: Callable[..., Any]
) -> None:
    pool = make_pool(
        psycopg2,
        **pg.kwargs(application_name=app_name),
        max_size=MAX_SIZE,
        timeout=TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
        reconnect_max=1.0,
        check_idle_after=0.2,
    )
    tally, log, peak = Tally(), [], [0]
    stop = time.monotonic() + SOAK_SECONDS
    run_all(
        [lambda: worker(pool, tally, stop) for _ in range(THREADS)]
        + [lambda: chaos(pg, app_name, stop, log), lambda: sampler(pg, app_name, stop, peak)]
    )
    assert pg.running
    assert tally.unexpected == [], tally.unexpected[:3]
    assert tally.slowest < CALL_BOUND, f"a call took {tally.slowest:.1f} s"
    assert tally.outcomes["ok"] > 0
    assert peak[0] <= MAX_SIZE, f"{peak[0]} sessions on the server (max_size {MAX_SIZE})"
    # Back at full strength: max_size connections at once, each answering.
    time.sleep(1.5)  # past the backoff
    held = [pool.get(timeout=20) for _ in range(MAX_SIZE)]
    for conn in held:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    for conn in held:
        pool.put(conn)
    stats = pool.stats()
    assert (stats.in_use, stats.waiting, stats.connecting) == (0, 0, 0), stats
    assert stats.size <= MAX_SIZE
    print(f"soak: {dict(tally.outcomes)}; chaos {log}; peak {peak[0]}; {stats}")
