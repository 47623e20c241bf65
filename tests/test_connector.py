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


# -- runtime control across the pools ------------------------------------------------------


def filled(connector: DatabaseConnector, *keys: tuple[str, str]) -> list[ConnectionPool]:
    pools = [connector.get(host, dbname) for host, dbname in keys]
    for pool in pools:
        pool.put(pool.get())
    return pools


def test_resize_applies_to_every_pool() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        pools = filled(connector, ("h1", "a"), ("h2", "a"))
        connector.resize(max_size=2)
        assert [pool.config.max_size for pool in pools] == [2, 2]


def test_resize_of_one_host_leaves_the_others() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}, max_size=4) as connector:
        h1a, h1b, h2 = filled(connector, ("h1", "a"), ("h1", "b"), ("h2", "a"))
        connector.resize(max_size=1, host="h1")
        assert (h1a.config.max_size, h1b.config.max_size, h2.config.max_size) == (1, 1, 4)


def test_a_bad_size_changes_no_pool() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        first, second = filled(connector, ("h1", "a"), ("h2", "a"))
        second.resize(max_size=1)
        with pytest.raises(ValueError, match="min_size"):
            connector.resize(min_size=2)  # fine for the first pool, not the second
        assert (first.config.min_size, second.config.min_size) == (0, 0)


def test_drain_closes_the_idle_connections_of_every_pool() -> None:
    db = FakeDatabase()
    with DatabaseConnector(db, {"default": {}}) as connector:
        pools = filled(connector, ("h1", "a"), ("h2", "a"))
        connector.drain()
        assert db.closes == 2
        assert [pool.stats().closes["drained"] for pool in pools] == [1, 1]


def test_pause_and_resume_one_database() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        paused, running = filled(connector, ("h1", "a"), ("h1", "b"))
        connector.pause(host="h1", dbname="a")
        assert paused.paused and not running.paused
        connector.resume(host="h1", dbname="a")
        assert not paused.paused


def test_check_counts_the_dead_connections_of_every_pool() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        assert connector.check() == 0  # the generic profile finds none dead


def test_wait_ready_waits_for_the_min_size_of_every_pool() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}, min_size=2) as connector:
        pools = [connector.get("h1", "a"), connector.get("h2", "a")]
        connector.wait_ready(timeout=10)
        assert all(pool.stats().idle == 2 for pool in pools)


def test_an_operation_on_an_unknown_host_names_it() -> None:
    with DatabaseConnector(FakeDatabase(), {"default": {}}) as connector:
        filled(connector, ("h1", "a"))
        with pytest.raises(UnknownHost, match="h9"):
            connector.drain(host="h9")


def test_an_operation_on_a_closed_connector_raises_pool_closed() -> None:
    connector = DatabaseConnector(FakeDatabase(), {"default": {}})
    connector.close()
    with pytest.raises(PoolClosed):
        connector.pause()


class _Heard:
    def __init__(self) -> None:
        self.pools: list[str] = []

    def on_checkout(self, pool: object, conn: object, waited: float) -> None:
        self.pools.append(pool.name)  # type: ignore[attr-defined]


def test_listeners_hear_every_pool_even_those_made_later() -> None:
    heard, by_setting = _Heard(), _Heard()
    connector = DatabaseConnector(
        FakeDatabase(), {"default": {}}, name="app", listeners=[by_setting]
    )
    connector.get("h1", "db").put(connector.get("h1", "db").get())
    connector.add_listener(heard)
    connector.add_listener(heard)  # once is enough
    for host in ("h1", "h2"):
        pool = connector.get(host, "db")
        pool.put(pool.get())
    assert heard.pools == ["app:h1/db", "app:h2/db"]
    assert by_setting.pools == ["app:h1/db", "app:h1/db", "app:h2/db"]
    connector.remove_listener(heard)
    pool = connector.get("h2", "db")
    pool.put(pool.get())
    assert heard.pools == ["app:h1/db", "app:h2/db"]
    with pytest.raises(ValueError, match="not a listener"):
        connector.remove_listener(heard)
    connector.close()


def test_holders_by_host_and_database() -> None:
    connector = DatabaseConnector(FakeDatabase(), {"default": {}})
    conn = connector.get("h1", "db").get(tag="job")
    connector.get("h2", "db").put(connector.get("h2", "db").get())
    holders = connector.holders()
    assert list(holders) == [("h1", "db")]
    assert holders["h1", "db"][0].tag == "job"
    assert connector.get("h1", "db").name == "h1/db"
    connector.get("h1", "db").put(conn)
    connector.close()
