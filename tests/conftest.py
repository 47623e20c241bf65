"""Shared fixtures: fake databases and pools that are closed after each test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
from dbapi_pool.testing.fakedb import FakeDatabase


@pytest.fixture
def db() -> FakeDatabase:
    """Return a fresh fake database (a DB-API module of its own)."""
    return FakeDatabase()


@pytest.fixture
def make_pool() -> Iterator[Callable[..., ConnectionPool]]:
    """Return a pool factory; every pool it made is closed at the end of the test."""
    pools: list[ConnectionPool] = []

    def make(module: Any, *args: Any, **settings: Any) -> ConnectionPool:
        settings.setdefault("name", "test")
        pool = ConnectionPool(module, *args, **settings)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


@pytest.fixture
def eventually() -> Callable[..., bool]:
    """Return ``eventually(check, timeout=5.0)``: poll until ``check()`` holds or time is up
    (the bound is generous: these machines are shared and noisy)."""
    return _eventually
