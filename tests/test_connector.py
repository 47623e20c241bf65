"""DatabaseConnector: a pool per (host, database), on the fake driver."""

from __future__ import annotations

import threading

import pytest

from dbapi_pool import ConnectionPool, DatabaseConnector, PoolClosed, UnknownHost
from dbapi_pool.testing.fakedb import FakeDatabase


def test_pool_is_created_once_per_host_and_database() -> None:
    db = FakeDatabase()
    with DatabaseConnector(db, {"default": {"user": "u"}}) as connector:
        pool = connector.get("h1", "orders")
        assert connector.get("h1", "orders") is pool
        assert connector.get("h1", "billing") is not pool
        assert connector.get("h2", "orders") is not pool
        assert len(connector.pools()) == 3


def test_host_entry_wins_over_default_and_settings_reach_every_pool() -> None:
    db = FakeDatabase()
    credentials = {"h1": {"user": "own"}, "default": {"user": "fallback"}}
    with DatabaseConnector(db, credentials, max_size=2, application="x") as connector:
        own, fallback = connector.get("h1", "d"), connector.get("h2", "d")
        own.put(own.get())
        fallback.put(fallback.get())
        assert own.config.max_size == fallback.config.max_size == 2
    kwargs = [c.kwargs for c in db.connections]
    assert kwargs[0] == {"host": "h1", "database": "d", "user": "own", "application": "x"}
    assert kwargs[1]["user"] == "fallback"


def test_unknown_host_without_default_names_the_host() -> None:
    connector = DatabaseConnector(FakeDatabase(), {"h1": {}})
    with pytest.raises(UnknownHost) as caught:
        connector.get("nowhere", "d")
    assert isinstance(caught.value, KeyError)
    assert "'nowhere'" in str(caught.value)


def test_database_keyword_suits_the_driver() -> None:
    db = FakeDatabase(name="MySQLdb")
    with DatabaseConnector(db, {"default": {}}) as connector:
        pool = connector.get("h", "orders")
        pool.put(pool.get())
    assert db.connections[0].kwargs["db"] == "orders"


def test_close_closes_every_pool_and_refuses_new_ones() -> None:
    connector = DatabaseConnector(FakeDatabase(), {"default": {}})
    pools = [connector.get("h", "a"), connector.get("h", "b")]
    connector.close()
    assert all(pool.closed for pool in pools)
    with pytest.raises(PoolClosed):
        connector.get("h", "c")


def test_concurrent_first_use_creates_one_pool() -> None:
    connector = DatabaseConnector(FakeDatabase(), {"default": {}})
    seen: list[ConnectionPool] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        seen.append(connector.get("h", "d"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(seen) == 8 and len({id(p) for p in seen}) == 1
    connector.close()


def test_credentials_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="credentials must map"):
        DatabaseConnector(FakeDatabase(), [("h", {})])  # type: ignore[arg-type]
