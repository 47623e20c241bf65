"""Rules of the threaded pool that the asyncio pool keeps in its offloading half (offload.py).

Cursors of a checkout are closed when its connection comes back, also after a cancelled
call (issue 11, defect 4); connects are logged as an operator needs (defect 6: the first
failure of a streak at WARNING, the rest at DEBUG, the recovery at INFO).
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from dbapi_pool import AsyncConnectionPool, DriverProfile, register_profile
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError

REFUSED = "pool 'orders': could not connect (OperationalError: fakedb: connection refused)"


def pool_messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dbapi_pool"]


# -- cursors ---------------------------------------------------------------------------------


def test_a_cursor_of_a_cancelled_call_is_closed_before_its_connection_serves_again() -> None:
    register_profile(
        DriverProfile(
            name="fakedb_cancel_cursors", cancel=lambda connect, conn, session_id: conn.cancel()
        )
    )
    db = FakeDatabase(name="fakedb_cancel_cursors")

    async def main() -> tuple[bool, bool]:
        async with AsyncConnectionPool(db, max_size=1, name="cursors") as pool:
            conn = await pool.get()
            kept = conn.cursor()
            task = asyncio.ensure_future(kept.execute("SLEEP 5"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with pool.connection(timeout=5) as again:
                same = again.raw is db.connections[0]
                return same, kept.raw.closed

    same, kept_closed = asyncio.run(main())
    assert same  # the cancelled call's connection, reset and lent again
    assert kept_closed


# -- connect logging -------------------------------------------------------------------------


def test_first_failed_connect_of_a_streak_is_a_warning_and_the_recovery_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")

    async def main() -> None:
        db = FakeDatabase(fail_connects=2)
        pool = AsyncConnectionPool(db, name="orders", reconnect_min=0.001, reconnect_max=0.001)
        async with pool:
            for _ in range(2):
                await asyncio.sleep(0.002)  # past the backoff: each get() makes an attempt
                with pytest.raises(OperationalError):
                    await pool.get()
            await asyncio.sleep(0.002)
            await pool.put(await pool.get())

    asyncio.run(main())
    connects = [
        (level, message)
        for level, message in pool_messages(caplog)
        if "could not connect" in message or "connected" in message
    ]
    assert connects == [
        (logging.WARNING, REFUSED),
        (logging.DEBUG, REFUSED),
        (logging.INFO, "pool 'orders': connected again after 2 failed connects"),
    ]


def test_refill_to_min_size_logs_its_failure_streak_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")

    async def main() -> None:
        db = FakeDatabase(fail_connects=5)
        async with AsyncConnectionPool(
            db, name="orders", min_size=2, reconnect_min=60, reconnect_max=60
        ):
            pass

    asyncio.run(main())
    warnings_logged = [m for level, m in pool_messages(caplog) if level == logging.WARNING]
    assert warnings_logged == [REFUSED]
