"""Small contract breaks found by running the README (issue 11, defect 6), on fakedb.

The per-call ``timeout`` is also covered on every flavour by the contract suite
(tests/contract); the real-server side of refused logins is in tests/faults.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import warnings
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
from dbapi_pool._core import CONNECT, PoolState
from dbapi_pool._drivers import DriverProfile, register_profile
from dbapi_pool.config import PoolConfig
from dbapi_pool.testing.fakedb import FakeDatabase, OperationalError, ProgrammingError

pytestmark = pytest.mark.filterwarnings(r"ignore:\s*Eventlet is deprecated")


def refused_login() -> OperationalError:
    """Build fakedb's stand-in for a refused login: an error with SQLSTATE 28P01."""
    error = OperationalError('password authentication failed for user "app"')
    error.sqlstate = "28P01"  # type: ignore[attr-defined]
    return error


def by_sqlstate(error: BaseException) -> bool:
    """Tell a refused login as the generic driver profile does (SQLSTATE class 28)."""
    return str(getattr(error, "sqlstate", "")).startswith("28")


def pool_messages(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dbapi_pool"]


# -- get(timeout=...) on the asyncio pool and the eventlet drop-in --------------------------


def test_async_get_refuses_a_bad_timeout_naming_the_pool_and_the_argument() -> None:
    async def main() -> None:
        async with AsyncConnectionPool(FakeDatabase(), name="orders") as pool:
            with pytest.raises(TypeError, match=r"'orders': the timeout argument of get\(\)"):
                await pool.get(timeout="5")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"'orders': the timeout argument.* >= 0"):
                await pool.get(timeout=-1)

    asyncio.run(main())


def test_eventlet_drop_in_get_refuses_a_bad_timeout() -> None:
    from dbapi_pool.compat import eventlet_db_pool as db_pool

    pool = db_pool.RawConnectionPool(FakeDatabase(), max_size=1)
    try:
        with pytest.raises(TypeError, match=r"the timeout argument of get\(\) must be a number"):
            pool.get(timeout="5")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"the timeout argument of get\(\) must be >= 0"):
            pool.get(timeout=-1)
        conn = pool.get(timeout=math.inf)
        pool.put(conn)
    finally:
        pool.close()


# -- get_nowait(): alike in both flavours ----------------------------------------------------


def test_async_get_nowait_opens_a_connection_below_max_size() -> None:
    db = FakeDatabase()

    async def main() -> None:
        async with AsyncConnectionPool(db, max_size=1) as pool:
            conn = await pool.get_nowait()
            assert db.connects == 1
            await pool.put(conn)

    asyncio.run(main())


def test_async_get_nowait_never_waits_for_another_caller() -> None:
    async def main() -> None:
        async with AsyncConnectionPool(FakeDatabase(), max_size=1, timeout=30) as pool:
            held = await pool.get()
            with pytest.raises(PoolTimeout):
                await asyncio.wait_for(pool.get_nowait(), 10)
            await pool.put(held)

    asyncio.run(main())


# -- settings and connect keywords checked at construction ----------------------------------


def test_misspelt_setting_warns_when_the_driver_takes_any_keyword() -> None:
    with pytest.warns(UserWarning, match=r"'orders': max_sise is not a pool setting \(did you "):
        pool = ConnectionPool(FakeDatabase(), name="orders", max_sise=3)
    pool.close()


def test_misspelt_setting_warning_points_at_the_callers_line() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ConnectionPool(FakeDatabase(), max_sise=3).close()
    assert [w.filename for w in caught] == [__file__]


def test_driver_keyword_unlike_any_setting_is_passed_on_quietly() -> None:
    db = FakeDatabase()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pool = ConnectionPool(db, application="billing")
    pool.put(pool.get())
    assert db.connections[0].kwargs["application"] == "billing"
    pool.close()


def test_connect_args_must_be_callable_naming_it() -> None:
    with pytest.raises(TypeError, match=r"pool 'orders': connect_args must be a callable"):
        ConnectionPool(FakeDatabase(), name="orders", connect_args={"password": "x"})


async def fetch_token() -> dict[str, str]:
    return {"password": "token"}


class TokenSource:
    async def __call__(self) -> dict[str, str]:
        return {"password": "token"}


@pytest.mark.parametrize("connect_args", [fetch_token, TokenSource()], ids=["function", "object"])
def test_threaded_pool_refuses_a_coroutine_connect_args_naming_it(connect_args: Any) -> None:
    # Only AsyncConnectionPool awaits it: called here, it would return an unawaited coroutine.
    with pytest.raises(
        TypeError,
        match=r"pool 'orders': connect_args is a coroutine function, which only "
        r"AsyncConnectionPool can await; give ConnectionPool a plain function",
    ):
        ConnectionPool(FakeDatabase(), name="orders", connect_args=connect_args)


def test_asyncio_pool_accepts_a_coroutine_connect_args() -> None:
    pool = AsyncConnectionPool(FakeDatabase(), name="orders", connect_args=fetch_token)
    assert pool.config.connect_args is fetch_token


def test_connect_args_returning_no_mapping_fails_the_connect_naming_it() -> None:
    pool = ConnectionPool(FakeDatabase(), name="orders", connect_args=lambda: ["password"])
    with pytest.raises(TypeError, match=r"pool 'orders': connect_args returned a list, not a "):
        pool.get()
    pool.close()


def test_misspelt_keyword_of_a_driver_with_a_closed_signature_is_an_error() -> None:
    import pymysql

    with pytest.raises(TypeError, match=r"pymysql.connect\(\) does not take max_sise \(did you "):
        ConnectionPool(pymysql, host="127.0.0.1", user="root", max_sise=3)


@pytest.mark.parametrize(
    ("driver", "kwargs"),
    [
        ("psycopg2", {"host": "127.0.0.1", "dbname": "test"}),
        ("psycopg", {"host": "127.0.0.1", "dbname": "test"}),
        ("MySQLdb", {"host": "127.0.0.1", "db": "test"}),
        ("sqlite3", {"database": ":memory:"}),
        ("pg8000.dbapi", {"host": "127.0.0.1", "database": "test"}),
    ],
)
def test_unknown_keyword_is_refused_where_the_profile_knows_the_drivers(
    driver: str, kwargs: dict[str, Any]
) -> None:
    import importlib

    module = importlib.import_module(driver)
    with pytest.raises(TypeError, match=r"\.connect\(\) does not take max_sise"):
        ConnectionPool(module, name="orders", max_sise=3, **kwargs)


@pytest.mark.parametrize(
    ("driver", "kwargs"),
    [
        ("psycopg2", {"host": "127.0.0.1", "dbname": "test", "application_name": "a"}),
        ("psycopg2", {"host": "127.0.0.1", "database": "test", "async_": False}),
        ("psycopg", {"host": "127.0.0.1", "dbname": "test", "autocommit": True}),
        ("MySQLdb", {"host": "127.0.0.1", "db": "test", "passwd": "", "charset": "utf8mb4"}),
        ("sqlite3", {"database": ":memory:", "isolation_level": None}),
    ],
)
def test_keywords_the_driver_takes_are_accepted(driver: str, kwargs: dict[str, Any]) -> None:
    import importlib

    module = importlib.import_module(driver)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConnectionPool(module, **kwargs).close()


# -- a refused login is not an outage ---------------------------------------------------------


def test_core_names_a_refused_login_in_the_fail_fast_error() -> None:
    state = PoolState(PoolConfig.build("core"), rng=lambda: 0.5)
    state.health.is_auth_error = by_sqlstate
    assert state.checkout(0.0) is CONNECT
    state.connect_failed(0.0, refused_login())
    with pytest.raises(OperationalError) as caught:
        state.checkout(0.01)
    (note,) = caught.value.__notes__
    assert "'core': the database refused the credentials (authentication failed; 1 " in note
    assert "unreachable" not in note


def test_core_still_calls_an_outage_unreachable() -> None:
    state = PoolState(PoolConfig.build("core"), rng=lambda: 0.5)
    state.health.is_auth_error = by_sqlstate
    assert state.checkout(0.0) is CONNECT
    state.connect_failed(0.0, OperationalError("connection refused"))
    with pytest.raises(OperationalError) as caught:
        state.checkout(0.01)
    assert "the database is unreachable (1 connects failed" in caught.value.__notes__[0]


def test_pool_reports_a_refused_login_as_such(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    pool = ConnectionPool(
        FakeDatabase(connect_error=refused_login()),
        name="orders",
        reconnect_min=60,
        reconnect_max=60,
    )
    with pytest.raises(OperationalError):
        pool.get()
    with pytest.raises(OperationalError) as caught:
        pool.get()  # within the backoff: fails fast
    assert "refused the credentials" in caught.value.__notes__[0]
    warning = [m for level, m in pool_messages(caplog) if level == logging.WARNING]
    assert warning == [
        "pool 'orders': the database refused the credentials (OperationalError: password "
        'authentication failed for user "app")'
    ]
    pool.close()


# -- logging: what an operator needs ----------------------------------------------------------


def test_first_failed_connect_of_a_streak_is_a_warning_and_the_rest_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    db = FakeDatabase(fail_connects=3)
    pool = ConnectionPool(db, name="orders", reconnect_min=0.001, reconnect_max=0.001)
    for _ in range(3):
        with pytest.raises(OperationalError):
            time.sleep(0.002)  # past the backoff: each get() makes an attempt
            pool.get()
    failures = [(lvl, m) for lvl, m in pool_messages(caplog) if "could not connect" in m]
    assert failures == [
        (
            logging.WARNING,
            "pool 'orders': could not connect (OperationalError: fakedb: connection refused)",
        ),
        (
            logging.DEBUG,
            "pool 'orders': could not connect (OperationalError: fakedb: connection refused)",
        ),
        (
            logging.DEBUG,
            "pool 'orders': could not connect (OperationalError: fakedb: connection refused)",
        ),
    ]
    pool.close()


def test_first_connect_after_failures_is_logged_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    pool = ConnectionPool(
        FakeDatabase(fail_connects=2), name="orders", reconnect_min=0.001, reconnect_max=0.001
    )
    for _ in range(2):
        with pytest.raises(OperationalError):
            time.sleep(0.002)
            pool.get()
    time.sleep(0.002)
    pool.put(pool.get())
    infos = [m for level, m in pool_messages(caplog) if level == logging.INFO]
    assert "pool 'orders': connected again after 2 failed connects" in infos
    pool.close()


def test_failed_connect_log_never_shows_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    echo = OperationalError("invalid dsn: host=db password=hunter2 user=app")
    pool = ConnectionPool(FakeDatabase(connect_error=echo), name="orders", password="hunter2")
    with pytest.raises(OperationalError):
        pool.get()
    assert caplog.records and not any("hunter2" in r.getMessage() for r in caplog.records)
    pool.close()


def test_refill_to_min_size_logs_its_failure_streak_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    pool = ConnectionPool(FakeDatabase(fail_connects=5), name="orders", min_size=2)
    pool.close()
    warnings_logged = [m for lvl, m in pool_messages(caplog) if lvl == logging.WARNING]
    assert warnings_logged == [
        "pool 'orders': could not connect (OperationalError: fakedb: connection refused)"
    ]


def test_connection_broken_during_use_is_closed_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    # A driver whose profile tells a "dead" error, as every real one's does.
    register_profile(
        DriverProfile(
            name="fakedb_dead_errors", is_disconnect=lambda e: isinstance(e, OperationalError)
        )
    )
    db = FakeDatabase(name="fakedb_dead_errors")
    pool = ConnectionPool(db, name="orders")
    with pytest.raises(OperationalError), pool.connection() as conn:
        db.connections[0].kill()  # the server ended the session during use
        conn.cursor().execute("SELECT 1")
    assert db.connections[0].closed
    assert (
        logging.WARNING,
        "pool 'orders': a connection came back broken (the driver reported it dead); closed it",
    ) in pool_messages(caplog)
    pool.close()


def test_statement_error_closes_nothing_and_warns_of_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dbapi_pool")
    db = FakeDatabase()
    pool = ConnectionPool(db, name="orders")
    conn = pool.get()
    with pytest.raises(ProgrammingError):
        conn.cursor().execute("FAIL")
    pool.put(conn)
    assert not db.connections[0].closed
    assert not [m for lvl, m in pool_messages(caplog) if lvl >= logging.WARNING]
    pool.close()
