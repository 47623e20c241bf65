"""Run the contract suite once per pool flavour: OS threads and asyncio."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from contract_flavours import GREEN_FLAVOUR, RUNTIME, AsyncFacade, LoopThread

from dbapi_pool import AsyncConnectionPool, ConnectionPool

FLAVOURS = [GREEN_FLAVOUR] if GREEN_FLAVOUR else ["threads", "asyncio"]


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
        if flavour in ("gevent", "eventlet", "gevent-patched", "eventlet-patched"):
            # fakedb is pure Python: after monkey-patching it cooperates (and its patched
            # locks must stay in green threads); unpatched, its calls go to OS threads.
            patched = flavour.endswith("-patched")
            backend = flavour.removesuffix("-patched")
            pool: Any = ConnectionPool(
                module, *args, backend=backend, offload=not patched, **settings
            )
        elif runner is None:
            pool = ConnectionPool(module, *args, **settings)
        else:
            pool = AsyncFacade(runner, AsyncConnectionPool(module, *args, **settings))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()
    if runner is not None:
        runner.stop()


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """Return ``eventually(check, timeout=5.0)``, polling with the flavour's own sleep (a
    blocking sleep would starve the green threads being waited for)."""

    def poll(check: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            RUNTIME.sleep(0.01)
        return check()

    return poll
