"""AsyncConnectionPool behaviour that only asyncio has, on the fake driver and sqlite3.

The shared behaviour is in tests/contract (run on both flavours); these are the loop-bound
objects, the offloading threads, cancellation of running calls, and the async facades.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from dbapi_pool import (
    AsyncConnectionPool,
    AsyncDatabaseConnector,
    ConnectionReleased,
    DriverProfile,
    PoolClosed,
    PoolTimeout,
    WrongEventLoop,
    register_profile,
)
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def pool_threads(pool: AsyncConnectionPool) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"dbapi-pool {pool.name} ")]


def test_init_creates_no_loop_bound_object_or_thread() -> None:
    pool = AsyncConnectionPool(FakeDatabase(), name="lazy")
    assert pool_threads(pool) == []
    assert pool._loop is None


def test_threads_are_started_at_open_ahead_of_need() -> None:
    async def main() -> int:
        async with AsyncConnectionPool(FakeDatabase(), max_size=5, name="ahead") as pool:
            return len(pool_threads(pool))

    assert run(main()) == 6  # one per slot, plus one for server-side cancels


def test_close_lets_the_threads_exit() -> None:
    async def main() -> AsyncConnectionPool:
        async with AsyncConnectionPool(FakeDatabase(), max_size=3, name="exits") as pool:
            await pool.put(await pool.get())
        return pool

    pool = run(main())
    assert isinstance(pool, AsyncConnectionPool)
    for thread in pool_threads(pool):
        thread.join(5)
    assert pool_threads(pool) == []


def test_driver_calls_never_use_the_loops_default_executor() -> None:
    async def main() -> tuple[object, int, int]:
        loop = asyncio.get_running_loop()
        async with AsyncConnectionPool(FakeDatabase(), name="own-threads") as pool:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
                caller = threading.get_ident()
                worker = await conn.run(threading.get_ident)
        return loop._default_executor, caller, worker  # type: ignore[attr-defined]

    executor, caller, worker = run(main())  # type: ignore[misc]
    assert executor is None
    assert caller != worker


def test_each_connection_keeps_its_own_thread() -> None:
    async def main() -> set[int]:
        async with AsyncConnectionPool(FakeDatabase(), max_size=1, name="pinned") as pool:
            seen = set()
            for _ in range(5):
                async with pool.connection() as conn:
                    seen.add(await conn.run(threading.get_ident))
            return seen

    assert len(run(main())) == 1  # type: ignore[arg-type]


def test_pool_used_from_a_second_loop_raises() -> None:
    pool = AsyncConnectionPool(FakeDatabase(), name="one-loop")

    async def use() -> None:
        await pool.put(await pool.get())

    run(use())
    with pytest.raises(WrongEventLoop, match="'one-loop' belongs to another event loop"):
        run(use())


def test_get_after_close_raises() -> None:
    async def main() -> None:
        pool = AsyncConnectionPool(FakeDatabase(), name="shut")
        await pool.open()
        await pool.close()
        with pytest.raises(PoolClosed):
            await pool.get()

    run(main())


def test_cursor_facade_offloads_each_operation() -> None:
    db = FakeDatabase(results={"SELECT x FROM t": [(1,), (2,), (3,)]})

    async def main() -> tuple[object, ...]:
        async with AsyncConnectionPool(db, name="facade") as pool, pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.execute("SELECT x FROM t")
                first = await cur.fetchone()
                rest = await cur.fetchall()
            cur = await conn.cursor()
            await cur.executemany("INSERT INTO t VALUES (?)", [(1,), (2,)])
            rowcount = cur.rowcount
            cur = await conn.execute("SELECT x FROM t")
            streamed = [row async for row in cur]
            many = await (await conn.execute("SELECT x FROM t")).fetchmany(2)
            return first, rest, rowcount, streamed, many

    first, rest, rowcount, streamed, many = run(main())  # type: ignore[misc]
    assert (first, rest, rowcount) == ((1,), [(2,), (3,)], 2)
    assert streamed == [(1,), (2,), (3,)]
    assert many == [(1,), (2,)]


def test_connection_block_commits_and_rolls_back() -> None:
    db = FakeDatabase()

    async def main() -> None:
        async with AsyncConnectionPool(db, max_size=1, name="tx") as pool:
            async with pool.connection() as conn:
                await conn.execute("INSERT INTO t VALUES (1)")
            with pytest.raises(KeyError):
                async with pool.connection() as conn:
                    await conn.execute("INSERT INTO t VALUES (2)")
                    raise KeyError("boom")

    run(main())
    raw = db.connections[0]
    assert raw.commits == 1
    assert raw.rollbacks >= 1 and not raw.in_transaction


def test_returned_connection_refuses_use() -> None:
    async def main() -> None:
        async with AsyncConnectionPool(FakeDatabase(), name="used") as pool:
            conn = await pool.get()
            await pool.put(conn)
            with pytest.raises(ConnectionReleased):
                await conn.execute("SELECT 1")
            with pytest.raises(ConnectionReleased):
                await conn.run(print)

    run(main())


# -- cancellation ------------------------------------------------------------------------

_CANCELLING = DriverProfile(
    name="fakedb_cancelling", cancel=lambda connect, conn, session_id: conn.cancel()
)


def test_cancelled_query_is_cancelled_on_the_server_and_the_connection_reused() -> None:
    register_profile(_CANCELLING)
    db = FakeDatabase(name="fakedb_cancelling")

    async def main() -> tuple[float, object]:
        async with AsyncConnectionPool(db, max_size=1, name="cancel") as pool:
            conn = await pool.get()
            task = asyncio.ensure_future(conn.execute("SLEEP 5"))
            await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            started = loop.time()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancelled_after = loop.time() - started
            async with pool.connection(timeout=5) as again:
                await again.execute("SELECT 1")
            return cancelled_after, pool.stats()

    cancelled_after, stats = run(main())  # type: ignore[misc]
    assert cancelled_after < 1.0  # the task sees CancelledError promptly
    assert len(db.connections) == 1  # the same connection served again
    assert db.connections[0].rollbacks >= 1
    assert stats.size == 1  # type: ignore[attr-defined]


def test_connection_stays_out_until_a_call_that_cannot_be_cancelled_returns() -> None:
    db = FakeDatabase(name="fakedb_no_cancel")

    async def main() -> tuple[int, int]:
        async with AsyncConnectionPool(db, max_size=1, name="busy") as pool:
            conn = await pool.get()
            task = asyncio.ensure_future(conn.execute("SLEEP 0.3"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            busy_in_use = pool.stats().in_use  # still running: counts against max_size
            async with pool.connection(timeout=5) as again:
                await again.execute("SELECT 1")
            return busy_in_use, len(db.connections)

    busy_in_use, connections = run(main())  # type: ignore[misc]
    assert busy_in_use == 1
    assert connections == 2  # no cancel API: closed after the call, a new one opened
    assert db.connections[0].closed


def test_task_cancelled_while_waiting_loses_no_slot() -> None:
    async def main() -> object:
        async with AsyncConnectionPool(FakeDatabase(), max_size=1, name="wait") as pool:
            held = await pool.get()
            waiting = asyncio.ensure_future(pool.get(timeout=5))
            await asyncio.sleep(0.01)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await pool.put(held)
            async with pool.connection(timeout=1):
                pass
            return pool.stats()

    stats = run(main())
    assert (stats.waiting, stats.in_use, stats.idle) == (0, 0, 1)  # type: ignore[attr-defined]


def test_task_cancelled_right_after_a_hand_off_gives_the_connection_back() -> None:
    async def main() -> object:
        # reset=None: put() then hands over without yielding to the loop.
        pool = AsyncConnectionPool(FakeDatabase(), max_size=1, reset=None, name="handoff")
        async with pool:
            held = await pool.get()
            waiting = asyncio.ensure_future(pool.get(timeout=5))
            await asyncio.sleep(0.01)
            await pool.put(held)  # handed to `waiting`, which has not run yet...
            assert not waiting.done()
            waiting.cancel()  # ...and is cancelled before it does
            with pytest.raises(asyncio.CancelledError):
                await waiting
            async with pool.connection(timeout=1):
                pass
            return pool.stats()

    stats = run(main())
    assert (stats.in_use, stats.idle, stats.size) == (0, 1, 1)  # type: ignore[attr-defined]


def test_waiters_time_out_each_at_its_own_deadline_in_any_order() -> None:
    # One timer serves every waiter: a later, shorter timeout must re-arm it earlier, and
    # a waiter served before its deadline must not be timed out by it.
    async def main() -> tuple[list[str], object]:
        async with AsyncConnectionPool(FakeDatabase(), max_size=1, name="sweep") as pool:
            held = await pool.get()
            patient = asyncio.ensure_future(pool.get(timeout=30))
            hasty = asyncio.ensure_future(pool.get(timeout=0.05))
            hastier = asyncio.ensure_future(pool.get(timeout=0.02))
            done: list[str] = []
            for name, task in (("hastier", hastier), ("hasty", hasty)):
                with pytest.raises(PoolTimeout, match="no connection available after"):
                    await asyncio.wait_for(task, 5)
                done.append(name)
            assert not patient.done()  # still in line, its deadline far away
            await pool.put(held)
            conn = await asyncio.wait_for(patient, 5)
            await pool.put(conn)
            return done, pool.stats()

    order, stats = run(main())
    assert order == ["hastier", "hasty"]
    assert (stats.waiting, stats.timeouts, stats.idle) == (0, 2, 1)  # type: ignore[attr-defined]


def test_failed_connect_raises_the_driver_error() -> None:
    db = FakeDatabase(fail_connects=1)

    async def main() -> None:
        pool = AsyncConnectionPool(db, name="refused", reconnect_min=0.01, reconnect_max=0.01)
        async with pool:
            with pytest.raises(OperationalError):
                await pool.get()
            assert pool.stats().size == 0
            await asyncio.sleep(0.05)  # past the backoff
            await pool.put(await pool.get())

    run(main())


# -- sqlite3 and the connector -----------------------------------------------------------


def test_sqlite3_works_without_check_same_thread(tmp_path: Path) -> None:
    async def main() -> object:
        pool = AsyncConnectionPool(sqlite3, database=str(tmp_path / "a.db"), max_size=3)
        async with pool:
            async with pool.connection() as conn:
                await conn.execute("CREATE TABLE t (x)")

            async def insert(i: int) -> None:
                async with pool.connection() as conn:
                    await conn.execute("INSERT INTO t VALUES (?)", (i,))

            await asyncio.gather(*(insert(i) for i in range(30)))
            async with pool.connection() as conn:
                return await (await conn.execute("SELECT count(*) FROM t")).fetchone()

    assert run(main()) == (30,)


def test_async_connector_keeps_one_pool_per_host_and_database() -> None:
    db = FakeDatabase()

    async def main() -> None:
        async with AsyncDatabaseConnector(db, {"default": {"user": "u"}}, max_size=2) as conn:
            pool = conn.get("h", "d")
            assert conn.get("h", "d") is pool
            async with pool.connection() as c:
                await c.execute("SELECT 1")
        assert pool.closed

    run(main())
    assert db.connections[0].kwargs == {"host": "h", "database": "d", "user": "u"}


def test_inbox_delivers_every_outcome_even_after_one_that_raises() -> None:
    from dbapi_pool._async.threads import Inbox

    async def main() -> tuple[list[object], list[dict[str, object]]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, object]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        inbox = Inbox(loop)
        seen: list[object] = []

        def broken(ok: bool, value: object) -> None:
            raise RuntimeError("boom")

        def record(ok: bool, value: object) -> None:
            seen.append(value)

        def from_a_thread() -> None:
            inbox.post(record, True, 1)
            inbox.post(broken, True, 2)
            inbox.post(record, True, 3)

        thread = threading.Thread(target=from_a_thread)
        thread.start()
        thread.join()
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        return seen, reported

    seen, reported = run(main())  # type: ignore[misc]
    assert seen == [1, 3]
    assert len(reported) == 1 and isinstance(reported[0]["exception"], RuntimeError)
