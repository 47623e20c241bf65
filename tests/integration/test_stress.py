"""Many threads, few connections: the pool never opens more than max_size, on the server."""

from __future__ import annotations

import random
import threading
import time

import pytest

from .support import Database, driver_params, wait_until

THREADS = 32
MAX_SIZE = 4
CHECKOUTS = 3000
SAMPLE_EVERY = 0.02


class Boom(Exception):
    """Raised on purpose inside a ``with pool.connection()`` block."""


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "pymysql"), indirect=True)
def test_threads_share_max_size_connections(dbenv: Database) -> None:
    pool = dbenv.make_pool(max_size=MAX_SIZE, timeout=60)
    marker: str = pool.test_marker  # type: ignore[attr-defined]
    session_sql = (
        "SELECT pg_backend_pid()" if dbenv.server == "postgres" else "SELECT CONNECTION_ID()"
    )
    driver_error = dbenv.module.Error

    sessions: set[int] = set()
    sessions_lock = threading.Lock()

    def server_count() -> int:
        """Connections of this pool that the server has right now."""
        if dbenv.server == "postgres":
            return dbenv.marker_count(marker)
        # MariaDB: the pooled sessions seen so far (each checkout records its id first).
        with sessions_lock:
            seen = list(sessions)
        return dbenv.alive_count(seen)

    claimed = 0
    claim_lock = threading.Lock()

    def claim() -> bool:
        nonlocal claimed
        with claim_lock:
            if claimed >= CHECKOUTS:
                return False
            claimed += 1
            return True

    gets = [0] * THREADS
    booms = [0] * THREADS
    sql_errors = [0] * THREADS
    failures: list[BaseException] = []

    def work(index: int) -> None:
        rng = random.Random(index)
        while claim():
            try:
                with pool.connection() as conn:
                    gets[index] += 1
                    cur = conn.cursor()
                    cur.execute(session_sql)
                    session = int(cur.fetchone()[0])
                    with sessions_lock:
                        sessions.add(session)
                    time.sleep(rng.uniform(0, 0.002))
                    roll = rng.random()
                    if roll < 0.05:
                        raise Boom
                    if roll < 0.10:
                        cur.execute("SELEC 1")  # a driver error inside the block
                    cur.execute("SELECT 1")
                    assert cur.fetchone()[0] == 1
                    cur.close()
            except Boom:
                booms[index] += 1
            except driver_error:
                sql_errors[index] += 1
            except BaseException as exc:
                failures.append(exc)
                return

    samples: list[int] = []
    sample_errors: list[BaseException] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.is_set():
            try:
                samples.append(server_count())
            except BaseException as exc:
                sample_errors.append(exc)
                return
            stop_sampling.wait(SAMPLE_EVERY)

    sampler = threading.Thread(target=sample, name="stress sampler", daemon=True)
    workers = [
        threading.Thread(target=work, args=(i,), name=f"stress worker {i}", daemon=True)
        for i in range(THREADS)
    ]
    sampler.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(90)
    stop_sampling.set()
    sampler.join(10)

    assert not any(thread.is_alive() for thread in workers), "workers still running"
    assert not failures, f"unexpected errors in workers: {failures[:3]!r}"
    assert not sample_errors, f"the sampler failed: {sample_errors!r}"
    assert sum(gets) == CHECKOUTS
    assert sum(booms) > 0
    assert sum(sql_errors) > 0
    assert samples, "the sampler took no sample"
    assert max(samples) <= MAX_SIZE, f"the server saw {max(samples)} pooled connections"
    assert max(samples) > 0
    assert 0 < len(sessions) <= MAX_SIZE  # connections were reused, never replaced

    stats = pool.stats()
    assert stats.in_use == 0
    assert stats.waiting == 0
    assert stats.connecting == 0
    assert stats.size <= MAX_SIZE
    assert stats.checkouts == sum(gets)
    assert stats.timeouts == 0
    assert stats.connects == len(sessions)
    assert stats.closed_total == 0

    pool.close()
    assert pool.stats().size == 0
    assert wait_until(lambda: server_count() == 0, timeout=5.0), (
        f"{server_count()} pooled connections still on the server after close()"
    )
