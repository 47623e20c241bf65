"""Run the contract suite once per pool flavour: OS threads and asyncio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from contract_flavours import AsyncFacade, LoopThread

from dbapi_pool import AsyncConnectionPool, ConnectionPool

FLAVOURS = ["threads", "asyncio"]


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    """Name the pool flavour under test."""
    return str(request.param)


@pytest.fixture
def make_pool(flavour: str) -> Iterator[Callable[..., Any]]:
    """Return a pool factory for the flavour; every pool it made is closed afterwards."""
    pools: list[Any] = []
    runner = LoopThread() if flavour == "asyncio" else None

    def make(module: Any, *args: Any, **settings: Any) -> Any:
        settings.setdefault("name", "test")
        if runner is None:
            pool: Any = ConnectionPool(module, *args, **settings)
        else:
            pool = AsyncFacade(runner, AsyncConnectionPool(module, *args, **settings))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()
    if runner is not None:
        runner.stop()
