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
    assert kwargs == {"host": "h", "connect_timeout": 3}


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
