"""Observability on the asyncio pool from real coroutines (issue 12): the checkout site is
the awaiting coroutine's line, the tag context variable follows the task, coroutine
listeners are not a thing (listeners are plain callables, run on the loop)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool, PoolTimeout, tagged
from dbapi_pool.testing.fakedb import FakeDatabase


async def _checkout_here(pool: AsyncConnectionPool) -> Any:
    return await pool.get()  # the site holders() must name


def test_site_task_and_tag_of_async_holders() -> None:
    async def main() -> None:
        async with AsyncConnectionPool(FakeDatabase(), max_size=2, name="a") as pool:
            with tagged("request-42"):
                conn = await asyncio.create_task(_checkout_here(pool), name="worker-1")
            async with pool.connection(tag="block") as other:
                holders = pool.holders()
                assert [h.tag for h in holders] == ["request-42", "block"]
                assert holders[0].holder == "task 'worker-1'"
                assert holders[0].site.startswith(__file__)
                assert "in _checkout_here" in holders[0].site
                assert holders[1].site.startswith(__file__) and "in main" in holders[1].site
                with pytest.raises(PoolTimeout, match=r"\[request-42\].*\[block\]"):
                    await pool.get(timeout=0.05)
                assert other.raw is not None
            await pool.put(conn)

    asyncio.run(main())


def test_async_listeners_run_on_the_loop_thread() -> None:
    loop_thread: list[threading.Thread] = []
    heard: list[tuple[str, threading.Thread]] = []

    class OnLoop:
        def on_connect(self, pool: Any, conn: Any, seconds: float) -> None:
            heard.append(("connect", threading.current_thread()))

        def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
            heard.append(("checkin", threading.current_thread()))

        def on_close(self, pool: Any, conn: Any, reason: str) -> None:
            heard.append((f"close:{reason}", threading.current_thread()))

    async def main() -> None:
        loop_thread.append(threading.current_thread())
        pool = AsyncConnectionPool(FakeDatabase(), listeners=[OnLoop()], name="b")
        async with pool:
            await pool.put(await pool.get())
        stats = pool.stats()
        assert (stats.create_time.count, stats.use_time.count, stats.wait_time.count) == (1, 1, 1)

    asyncio.run(main())
    assert [name for name, _ in heard] == ["connect", "checkin", "close:pool_closed"]
    assert all(thread is loop_thread[0] for _, thread in heard)
