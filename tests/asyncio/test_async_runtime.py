"""AsyncConnectionPool's runtime control on the fake driver: resize, drain, pause and
resume, check, open(wait=True) and wait_ready(), keepalive, coroutine connect_args.

"Close means closed": an operation that closes connections returns only once each
driver's ``close()`` has returned. The fake connections here take 0.2 s to close, so an
operation that did not wait would be seen returning with connections still open.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from dbapi_pool import (
    AsyncConnectionPool,
    AsyncDatabaseConnector,
    ConnectTimeout,
    DriverProfile,
    PoolClosed,
    PoolError,
    PoolTimeout,
    UnknownHost,
    register_profile,
)
from dbapi_pool.testing.fakedb import FakeConnection, FakeDatabase, OperationalError

T = TypeVar("T")

CLOSE_DELAY = 0.2


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def _ping(conn: Any) -> None:
    conn.cursor().execute("SELECT 1")


#: A fake driver whose profile has a ping, as the real drivers' profiles do.
register_profile(DriverProfile(name="fakedb_pinged", ping=_ping))


class SlowCloseDatabase(FakeDatabase):
    """A fake database whose connections take ``close_delay`` seconds to close."""

    def __init__(self, close_delay: float = CLOSE_DELAY, **knobs: Any) -> None:
        super().__init__(name="fakedb_pinged", **knobs)
        self.close_delay = close_delay

    def connect(self, *args: Any, **kwargs: Any) -> FakeConnection:
        conn = super().connect(*args, **kwargs)
        close = conn.close

        def slow_close() -> None:
            time.sleep(self.close_delay)
            close()

        conn.close = slow_close  # type: ignore[method-assign]
        return conn


def pool_of(db: FakeDatabase, **settings: Any) -> AsyncConnectionPool:
    settings.setdefault("name", "runtime")
    settings.setdefault("max_idle", None)
    settings.setdefault("max_age", None)
    return AsyncConnectionPool(db, **settings)


async def idle_connections(pool: AsyncConnectionPool, count: int) -> list[Any]:
    """Open ``count`` connections, return them idle; return the driver connections."""
    conns = [await pool.get() for _ in range(count)]
    raws = [conn.raw for conn in conns]
    for conn in conns:
        await pool.put(conn)
    return raws


def pool_threads(pool: AsyncConnectionPool) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(f"dbapi-pool {pool.name} ")]


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# -- resize --------------------------------------------------------------------------------


def test_shrinking_returns_once_the_idle_connections_above_max_are_closed() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[list[bool], Any]:
        async with pool_of(db, max_size=4) as pool:
            raws = await idle_connections(pool, 4)
            await pool.resize(max_size=1)
            return [raw.closed for raw in raws], pool.stats()

    closed, stats = run(main())
    assert closed == [True, True, True, False]  # the longest idle first; the newest kept
    assert (stats.size, stats.max_size, stats.closes["resized"]) == (1, 1, 3)


def test_shrinking_closes_connections_in_use_when_they_come_back() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[bool, bool, Any]:
        async with pool_of(db, max_size=2) as pool:
            held = [await pool.get(), await pool.get()]
            raws = [conn.raw for conn in held]
            await pool.resize(max_size=1)
            open_after_resize = not raws[0].closed
            await pool.put(held[0])  # put() returns after the close
            await pool.put(held[1])
            return open_after_resize, raws[0].closed and not raws[1].closed, pool.stats()

    open_after_resize, closed_on_return, stats = run(main())
    assert open_after_resize and closed_on_return
    assert (stats.size, stats.idle, stats.closes["resized"]) == (1, 1, 1)


def test_growing_serves_waiting_tasks_at_once() -> None:
    async def main() -> Any:
        async with pool_of(FakeDatabase(), max_size=1) as pool:
            held = await pool.get()
            waiting = asyncio.ensure_future(pool.get(timeout=10))
            await asyncio.sleep(0.05)
            assert pool.stats().waiting == 1
            await pool.resize(max_size=2)
            got = await asyncio.wait_for(waiting, 5)
            await pool.put(got)
            await pool.put(held)
            return pool.stats()

    stats = run(main())
    assert (stats.max_size, stats.size, stats.waiting, stats.timeouts) == (2, 2, 0, 0)


def test_growing_starts_a_thread_for_each_new_slot() -> None:
    async def main() -> tuple[int, int]:
        async with pool_of(FakeDatabase(), max_size=2) as pool:
            before = len(pool_threads(pool))
            await pool.resize(max_size=5)
            return before, len(pool_threads(pool))

    assert run(main()) == (3, 6)  # one per slot, plus the service thread


def test_raising_min_size_opens_the_missing_connections() -> None:
    async def main() -> Any:
        async with pool_of(FakeDatabase(), max_size=4) as pool:
            await pool.resize(min_size=3)
            await pool.wait_ready(10)
            return pool.stats()

    stats = run(main())
    assert (stats.min_size, stats.size, stats.idle) == (3, 3, 3)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"min_size": -1}, "min_size must be >= 0"),
        ({"max_size": 0}, "max_size must be >= 1"),
        ({"min_size": 3, "max_size": 2}, r"min_size \(3\) must not exceed max_size \(2\)"),
        ({}, "resize\\(\\) needs min_size or max_size"),
    ],
)
def test_resize_refuses_bad_sizes_naming_the_pool_and_changes_nothing(
    sizes: dict[str, int], message: str
) -> None:
    async def main() -> Any:
        async with pool_of(FakeDatabase(), max_size=4) as pool:
            with pytest.raises(ValueError, match=f"pool 'runtime': {message}"):
                await pool.resize(**sizes)
            return pool.stats()

    stats = run(main())
    assert (stats.min_size, stats.max_size) == (0, 4)


def test_resize_of_a_closed_pool_raises_pool_closed() -> None:
    async def main() -> None:
        pool = pool_of(FakeDatabase())
        await pool.open()
        await pool.close()
        with pytest.raises(PoolClosed, match="'runtime' is closed"):
            await pool.resize(max_size=2)

    run(main())


# -- drain ---------------------------------------------------------------------------------


def test_drain_returns_once_the_idle_connections_are_closed() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[list[bool], Any]:
        async with pool_of(db, max_size=3) as pool:
            raws = await idle_connections(pool, 3)
            await pool.drain()
            return [raw.closed for raw in raws], pool.stats()

    closed, stats = run(main())
    assert closed == [True, True, True]
    assert (stats.size, stats.closes["drained"]) == (0, 3)


def test_drain_closes_a_connection_in_use_when_it_comes_back() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[bool, bool, Any]:
        async with pool_of(db, max_size=2) as pool:
            held = await pool.get()
            await pool.drain()
            open_after_drain = not held.raw.closed
            raw = held.raw
            await pool.put(held)
            return open_after_drain, raw.closed, pool.stats()

    open_after_drain, closed_on_return, stats = run(main())
    assert open_after_drain and closed_on_return
    assert (stats.size, stats.closes["drained"]) == (0, 1)


def test_after_drain_every_checkout_gets_a_new_connection() -> None:
    async def main() -> tuple[set[int], set[int]]:
        async with pool_of(FakeDatabase(), max_size=2) as pool:
            before = {raw.serial for raw in await idle_connections(pool, 2)}
            held = await pool.get()
            await pool.drain()
            await pool.put(held)
            after = {raw.serial for raw in await idle_connections(pool, 2)}
            return before, after

    before, after = run(main())
    assert before.isdisjoint(after)


def test_drain_refills_min_size_with_new_connections() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[Any, list[int]]:
        async with pool_of(db, min_size=2, max_size=2) as pool:
            await pool.drain()  # the closes hold the slots: refilled once they are done
            await pool.wait_ready(10)
            return pool.stats(), [c.serial for c in db.open_connections]

    stats, open_serials = run(main())
    assert (stats.size, stats.idle, stats.connects) == (2, 2, 4)
    assert open_serials == [3, 4]


def test_drain_of_a_closed_pool_raises_pool_closed() -> None:
    async def main() -> None:
        opened = pool_of(FakeDatabase(), name="opened")
        await opened.open()
        await opened.close()
        never_opened = pool_of(FakeDatabase(), name="never-opened")
        await never_opened.close()
        with pytest.raises(PoolClosed, match="'opened' is closed"):
            await opened.drain()
        with pytest.raises(PoolClosed, match="'never-opened' is closed"):
            await never_opened.drain()

    run(main())


def test_a_connection_closed_on_return_is_replaced_up_to_min_size_at_once() -> None:
    async def main() -> Any:
        async with pool_of(FakeDatabase(), min_size=1, max_size=1) as pool:
            conn = await pool.get()
            conn.raw.kill()
            with pytest.raises(OperationalError):
                await conn.execute("SELECT 1")
            await pool.put(conn)  # broken: closed
            await pool.wait_ready(10)
            return pool.stats()

    stats = run(main())
    assert (stats.size, stats.idle, stats.connects) == (1, 1, 2)


# -- pause and resume ----------------------------------------------------------------------


def test_a_paused_pool_lends_nothing_until_resumed() -> None:
    async def main() -> tuple[int, Any]:
        async with pool_of(FakeDatabase(), max_size=2) as pool:
            await idle_connections(pool, 1)
            pool.pause()
            assert pool.paused
            waiting = [asyncio.ensure_future(pool.get(timeout=10)) for _ in range(2)]
            await asyncio.sleep(0.1)
            waited = pool.stats().waiting
            pool.resume()
            assert not pool.paused
            got = await asyncio.wait_for(asyncio.gather(*waiting), 5)
            for conn in got:
                await pool.put(conn)
            return waited, pool.stats()

    waited, stats = run(main())
    assert waited == 2
    assert (stats.size, stats.checkouts, stats.timeouts) == (2, 3, 0)


def test_a_checkout_from_a_paused_pool_times_out() -> None:
    async def main() -> None:
        async with pool_of(FakeDatabase()) as pool:
            await idle_connections(pool, 1)
            pool.pause()
            with pytest.raises(PoolTimeout, match="'runtime': no connection available"):
                await pool.get(timeout=0.1)
            with pytest.raises(PoolTimeout):
                await pool.get_nowait()

    run(main())


def test_pause_closes_nothing() -> None:
    db = FakeDatabase()

    async def main() -> Any:
        async with pool_of(db, min_size=2, max_idle=0.05) as pool:
            pool.pause()
            await asyncio.sleep(0.3)  # past max_idle: maintenance waits for resume
            return pool.stats()

    stats = run(main())
    assert (stats.size, stats.idle, sum(stats.closes.values())) == (2, 2, 0)


def test_pausing_twice_or_resuming_a_running_pool_raises_pool_error() -> None:
    async def main() -> None:
        async with pool_of(FakeDatabase()) as pool:
            with pytest.raises(PoolError, match="'runtime' is not paused"):
                pool.resume()
            pool.pause()
            with pytest.raises(PoolError, match="'runtime' is already paused"):
                pool.pause()
            pool.resume()
        with pytest.raises(PoolClosed):
            pool.pause()

    run(main())


# -- check ---------------------------------------------------------------------------------


def test_check_closes_the_dead_idle_connections_and_replaces_them() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[int, list[bool], Any]:
        async with pool_of(db, min_size=3, max_size=3) as pool:
            raws = await idle_connections(pool, 3)
            raws[0].kill()
            raws[2].kill()
            dead = await pool.check()
            closed = [raw.closed for raw in raws]  # closed before check() returns
            return dead, closed, pool.stats()  # and replaced

    dead, closed, stats = run(main())
    assert dead == 2
    assert closed == [True, False, True]
    assert (stats.idle, stats.closes["failed_check"], stats.connects) == (3, 2, 5)


def test_check_pings_each_idle_connection_and_keeps_the_live_ones_in_order() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[list[int], list[int]]:
        async with pool_of(db, max_size=3) as pool:
            raws = await idle_connections(pool, 3)
            before = len(db.log)
            await pool.check()
            pinged = [entry.serial for entry in db.log[before:] if entry.method == "execute"]
            reused = [(await pool.get()).raw.serial for _ in range(3)]
            assert {r.serial for r in raws} == set(reused)
            return sorted(pinged), reused

    pinged, reused = run(main())
    assert pinged == [1, 2, 3]
    assert reused == [3, 2, 1]  # still the most recently used first


def test_check_leaves_connections_in_use_alone() -> None:
    db = SlowCloseDatabase()

    async def main() -> tuple[bool, Any]:
        async with pool_of(db) as pool:
            held = await pool.get()
            held.raw.kill()
            await pool.check()
            still_lent = not held.released
            held.raw.dead = False  # let it be returned normally
            await pool.put(held)
            return still_lent, pool.stats()

    still_lent, stats = run(main())
    assert still_lent
    assert stats.closes["failed_check"] == 0


def test_check_of_a_closed_pool_raises_pool_closed() -> None:
    async def main() -> None:
        pool = pool_of(FakeDatabase())
        await pool.open()
        await pool.close()
        with pytest.raises(PoolClosed):
            await pool.check()

    run(main())


def test_close_during_a_check_waits_for_the_checked_connections_to_close() -> None:
    db = SlowCloseDatabase(query_delay=0.2)

    async def main() -> list[bool]:
        pool = pool_of(db, max_size=2)
        await pool.open()
        raws = await idle_connections(pool, 2)
        checking = asyncio.ensure_future(pool.check())
        await asyncio.sleep(0.05)  # the pings run
        await pool.close()
        closed = [raw.closed for raw in raws]
        await checking
        return closed

    assert run(main()) == [True, True]


# -- open(wait=True) and wait_ready() ------------------------------------------------------


def test_open_with_wait_returns_once_min_size_connections_are_open() -> None:
    db = FakeDatabase(connect_delay=0.05, fail_connects=2)

    async def main() -> Any:
        pool = pool_of(db, min_size=3, max_size=4, reconnect_min=0.01, reconnect_max=0.05)
        await pool.open(wait=True, timeout=10)
        stats = pool.stats()
        await pool.close()
        return stats

    stats = run(main())
    assert (stats.idle, stats.connects, stats.connect_failures) == (3, 3, 2)


def test_wait_ready_raises_pool_timeout_chained_to_the_last_connect_error() -> None:
    db = FakeDatabase(connect_error=OperationalError("fakedb: password authentication failed"))

    async def main() -> None:
        async with pool_of(db, min_size=2, reconnect_min=0.01, reconnect_max=0.05) as pool:
            with pytest.raises(PoolTimeout, match="'runtime': 0 of min_size=2") as caught:
                await pool.wait_ready(0.3)
            assert isinstance(caught.value.__cause__, OperationalError)
            assert "password authentication failed" in str(caught.value.__cause__)
            assert not pool.closed  # it goes on trying

    run(main())


def test_wait_ready_without_a_limit_waits_for_the_connections() -> None:
    async def main() -> int:
        pool = pool_of(FakeDatabase(connect_delay=0.05), min_size=2)
        async with pool:
            await pool.resize(min_size=3, max_size=4)
            await pool.wait_ready(float("inf"))
            return pool.stats().idle

    assert run(main()) == 3


def test_wait_ready_with_min_size_zero_returns_at_once() -> None:
    async def main() -> int:
        async with pool_of(FakeDatabase()) as pool:
            await pool.wait_ready(0)
            return pool.stats().size

    assert run(main()) == 0


def test_wait_ready_gets_pool_closed_when_the_pool_closes() -> None:
    db = FakeDatabase(connect_error=OperationalError("fakedb: connection refused"))

    async def main() -> None:
        pool = pool_of(db, min_size=1)
        await pool.open()
        waiting = asyncio.ensure_future(pool.wait_ready(10))
        await asyncio.sleep(0.05)
        await pool.close()
        with pytest.raises(PoolClosed):
            await waiting

    run(main())


@pytest.mark.parametrize("timeout", [-1, float("nan")])
def test_wait_ready_refuses_a_bad_timeout(timeout: float) -> None:
    async def main() -> None:
        async with pool_of(FakeDatabase()) as pool:
            with pytest.raises(ValueError, match="'runtime': timeout must be >= 0"):
                await pool.wait_ready(timeout)

    run(main())


def pings(db: FakeDatabase, conn: FakeConnection) -> int:
    return sum(1 for e in db.log if e.serial == conn.serial and e.method == "execute")


# -- keepalive -----------------------------------------------------------------------------


def test_keepalive_pings_quiet_idle_connections_and_replaces_dead_ones() -> None:
    db = SlowCloseDatabase(close_delay=0.0)

    async def main() -> tuple[bool, Any]:
        async with pool_of(db, min_size=2, max_size=2, keepalive=0.05) as pool:
            await pool.wait_ready(10)
            first, second = db.open_connections
            second.kill()  # a NAT dropped it silently
            replaced = await eventually(lambda: pool.stats().closes["failed_check"] == 1)
            await eventually(lambda: pool.stats().idle == 2)
            pinged_again = await eventually(lambda: pings(db, first) >= 2)
            return replaced and pinged_again, pool.stats()

    replaced_and_pinged_again, stats = run(main())
    assert replaced_and_pinged_again
    assert (stats.size, stats.connects, stats.checkouts) == (2, 3, 0)


# -- connect_args as a coroutine function --------------------------------------------------


def test_coroutine_connect_args_is_awaited_on_the_loop_and_merged() -> None:
    db = FakeDatabase()
    seen: list[int] = []

    async def token() -> dict[str, Any]:
        seen.append(threading.get_ident())
        await asyncio.sleep(0)  # real network I/O, in a real fetch
        return {"password": "t0k3n"}

    async def main() -> tuple[int, dict[str, Any]]:
        async with pool_of(db, connect_args=token, user="app") as pool:
            async with pool.connection() as conn:
                return threading.get_ident(), conn.raw.kwargs

    loop_thread, kwargs = run(main())
    assert seen == [loop_thread]
    assert kwargs == {"user": "app", "password": "t0k3n"}


def test_drain_after_new_credentials_makes_new_connections_use_them() -> None:
    db = FakeDatabase()
    current = {"password": "old"}

    async def credentials() -> dict[str, Any]:
        return dict(current)

    async def main() -> tuple[list[str], str]:
        async with pool_of(db, min_size=2, connect_args=credentials) as pool:
            current["password"] = "new"  # rotated
            await pool.drain()
            await pool.wait_ready(10)
            async with pool.connection() as conn:
                used = conn.raw.kwargs["password"]
            return [c.kwargs["password"] for c in db.open_connections], used

    passwords, used = run(main())
    assert passwords == ["new", "new"]
    assert used == "new"


def test_a_failing_coroutine_connect_args_fails_the_checkout_with_its_error() -> None:
    async def broken() -> dict[str, Any]:
        raise LookupError("vault: no such secret")

    async def main() -> Any:
        async with pool_of(FakeDatabase(), connect_args=broken) as pool:
            with pytest.raises(LookupError, match="vault: no such secret"):
                await pool.get()
            return pool.stats()

    stats = run(main())
    assert (stats.size, stats.connect_failures) == (0, 1)


def test_a_slow_coroutine_connect_args_counts_against_connect_timeout() -> None:
    async def stuck() -> dict[str, Any]:
        await asyncio.sleep(30)
        return {}

    async def main() -> Any:
        async with pool_of(FakeDatabase(), connect_args=stuck, connect_timeout=0.1) as pool:
            with pytest.raises(ConnectTimeout, match="'runtime'"):
                await pool.get()
            await eventually(lambda: pool.stats().size == 0)
            return pool.stats()

    assert run(main()).size == 0  # the slot came back


def test_a_coroutine_connect_args_must_return_a_mapping() -> None:
    async def wrong() -> Any:
        return "password=secret"

    async def main() -> None:
        async with pool_of(FakeDatabase(), connect_args=wrong) as pool:
            with pytest.raises(TypeError, match="connect_args returned a str, not a mapping"):
                await pool.get()

    run(main())


def _cancel_through_a_new_session(connect: Callable[[], Any], conn: Any, session: Any) -> None:
    connect().close()  # as MySQL's KILL QUERY does, from a short-lived session
    conn.cancel()


register_profile(DriverProfile(name="fakedb_killer", cancel=_cancel_through_a_new_session))


def test_a_server_side_cancel_connects_with_the_last_coroutine_connect_args() -> None:
    db = FakeDatabase(name="fakedb_killer")

    async def token() -> dict[str, Any]:
        return {"password": "t0k3n"}

    async def main() -> None:
        async with pool_of(db, connect_args=token) as pool:
            conn = await pool.get()
            query = asyncio.ensure_future(conn.execute("SLEEP 5"))
            await asyncio.sleep(0.1)
            query.cancel()
            with pytest.raises(asyncio.CancelledError):
                await query
            assert await eventually(lambda: db.connects == 2 and pool.stats().in_use == 0)

    run(main())
    killer = db.connections[1]
    assert killer.kwargs == {"password": "t0k3n"}
    assert killer.closed


# -- the connector -------------------------------------------------------------------------


def connector_of(db: FakeDatabase, **settings: Any) -> AsyncDatabaseConnector:
    return AsyncDatabaseConnector(db, {"default": {}}, max_idle=None, max_age=None, **settings)


def test_async_connector_checks_and_drains_every_pool_or_one_hosts() -> None:
    db = FakeDatabase(name="fakedb_pinged")

    async def main() -> tuple[int, list[Any]]:
        async with connector_of(db) as connector:
            pools = [connector.get("h1", "db"), connector.get("h2", "db")]
            for pool in pools:
                await idle_connections(pool, 1)
            db.kill_all()
            dead = await connector.check()
            for pool in pools:
                await idle_connections(pool, 1)
            await connector.drain(host="h1")
            return dead, [pool.stats() for pool in pools]

    dead, (h1, h2) = run(main())
    assert dead == 2
    assert (h1.closes["failed_check"], h1.closes["drained"], h1.size) == (1, 1, 0)
    assert (h2.closes["failed_check"], h2.closes["drained"], h2.size) == (1, 0, 1)


def test_async_connector_resizes_every_pool_or_none() -> None:
    async def main() -> tuple[list[int], list[int]]:
        async with connector_of(FakeDatabase(), max_size=4) as connector:
            pools = [connector.get("h1", "db"), connector.get("h2", "db")]
            await pools[0].resize(min_size=2)
            with pytest.raises(ValueError, match=r"'h1/db': min_size \(2\) must not exceed"):
                await connector.resize(max_size=1)
            unchanged = [pool.stats().max_size for pool in pools]
            await connector.resize(max_size=3)
            return unchanged, [pool.stats().max_size for pool in pools]

    assert run(main()) == ([4, 4], [3, 3])


def test_async_connector_waits_for_readiness_pauses_and_names_an_unknown_host() -> None:
    async def main() -> None:
        async with connector_of(FakeDatabase(), min_size=1) as connector:
            pools = [connector.get("h1", "db"), connector.get("h2", "db")]
            await connector.wait_ready(10)
            assert [pool.stats().idle for pool in pools] == [1, 1]
            connector.pause(dbname="db")
            assert all(pool.paused for pool in pools)
            connector.resume()
            assert not any(pool.paused for pool in pools)
            with pytest.raises(UnknownHost, match="no pool for host='h9'"):
                await connector.drain(host="h9")
        with pytest.raises(PoolClosed):
            connector.pause()

    run(main())
