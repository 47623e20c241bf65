"""Driver profiles: the per-driver conventions the pool applies."""

from __future__ import annotations

import sqlite3
import threading

from dbapi_pool import ConnectionPool, DriverProfile, register_profile
from dbapi_pool._drivers import profile_for, profile_named
from dbapi_pool.testing.fakedb import FakeDatabase


def test_known_drivers_name_their_database_keyword() -> None:
    expected = {"psycopg2": "dbname", "psycopg": "dbname", "pg8000": "database"}
    expected |= {"MySQLdb": "db", "pymysql": "database", "sqlite3": "database"}
    assert {n: profile_named(n).database_kwarg for n in expected} == expected


def test_unknown_driver_gets_the_generic_profile() -> None:
    profile = profile_for(FakeDatabase(name="acme_db"))
    assert (profile.name, profile.database_kwarg, profile.connect_timeout_kwarg) == (
        "acme_db",
        "database",
        None,
    )


def test_connect_timeout_goes_to_the_driver_in_whole_seconds() -> None:
    kwargs = profile_named("psycopg2").connect_kwargs({"host": "h"}, 2.5)
    assert kwargs == {"host": "h", "connect_timeout": 4}  # a second after the pool's own


def test_users_own_connect_timeout_wins() -> None:
    kwargs = profile_named("MySQLdb").connect_kwargs({"connect_timeout": 9}, 2.5)
    assert kwargs["connect_timeout"] == 9


def test_registered_profile_is_used_for_its_module() -> None:
    db = FakeDatabase(name="affine_db", thread_affinity=True)
    register_profile(DriverProfile(name="affine_db", defaults={"check_same_thread": False}))
    with ConnectionPool(db) as pool:
        conn = pool.get()
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(conn.cursor()))
        thread.start()
        thread.join(5)
        pool.put(conn)
    assert db.connections[0].kwargs == {"check_same_thread": False}
    assert len(outcome) == 1


def test_sqlite_connections_work_from_any_thread(tmp_path: object) -> None:
    with ConnectionPool(sqlite3, database=f"{tmp_path}/x.db", max_size=1) as pool:
        errors: list[BaseException] = []

        def use() -> None:
            try:
                with pool.connection() as conn:
                    conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
                    conn.execute("INSERT INTO t VALUES (1)")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=use) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        with pool.connection() as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (4,)
    assert errors == []


class _Status:
    """A stand-in exposing only what the idle tests read."""

    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


def test_libpq_idle_only_for_transaction_status_idle() -> None:
    idle = profile_named("psycopg2").transaction_idle
    assert idle is not None
    assert idle(_Status(get_transaction_status=lambda: 0))
    assert not idle(_Status(get_transaction_status=lambda: 2))  # INTRANS
    assert not idle(_Status(get_transaction_status=lambda: 4))  # UNKNOWN: broken


def test_pymysql_is_idle_only_in_autocommit_outside_a_transaction() -> None:
    idle = profile_named("pymysql").transaction_idle
    assert idle is not None
    assert idle(_Status(open=True, server_status=2))  # AUTOCOMMIT only
    assert not idle(_Status(open=True, server_status=3))  # IN_TRANS
    # Without autocommit a SELECT opens a read transaction MariaDB does not flag.
    assert not idle(_Status(open=True, server_status=0))
    assert not idle(_Status(open=False, server_status=2))


def test_default_rollback_is_skipped_when_the_driver_says_idle(tmp_path: object) -> None:
    calls: list[str] = []

    class Conn(sqlite3.Connection):
        def rollback(self) -> None:
            calls.append("rollback")
            super().rollback()

    with ConnectionPool(sqlite3, database=f"{tmp_path}/x.db", factory=Conn) as pool:
        with pool.connection() as conn:
            conn.execute("CREATE TABLE t (x)")
        conn = pool.get()
        pool.put(conn)  # nothing open: no rollback
        assert calls == []
        conn = pool.get()
        conn.execute("INSERT INTO t VALUES (1)")
        pool.put(conn)  # a transaction is open: rolled back
        assert calls == ["rollback"]
