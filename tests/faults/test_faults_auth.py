"""A refused login is reported as such, not as an outage (issue 11), with real servers.

PostgreSQL: the private cluster's password role (scram-sha-256; the shared server trusts
every local connection). MariaDB: a user with a password made on the shared server for
the test, with a unique name, and dropped after it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

from .pgdrivers import load, pg_kwargs, pg_params
from .servers import PrivatePostgres

PoolFactory = Callable[..., ConnectionPool]

#: Long and equal backoff bounds: the second get() surely falls within the backoff (a
#: fail-fast error, with the pool's note) rather than making an attempt of its own.
BACKOFF = {"reconnect_min": 60.0, "reconnect_max": 60.0}


def _refused_twice(pool: ConnectionPool, error: type[BaseException]) -> BaseException:
    """Fail two checkouts: the first with the driver's error, the second fast; return it."""
    with pytest.raises(error) as first:
        pool.get(timeout=15)
    assert pool.profile.is_auth_error(first.value)
    with pytest.raises(error) as second:
        pool.get(timeout=15)
    assert pool.stats().connect_failures == 1  # the second never reached the server
    return second.value


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the pool's WARNING lines (caplog must capture at WARNING, as it does)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dbapi_pool" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("driver", pg_params())
def test_wrong_postgres_password_is_named_a_refused_login(
    driver: str,
    pg: PrivatePostgres,
    make_pool: PoolFactory,
    app_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = load("pg8000.dbapi" if driver == "pg8000" else driver)
    pg.set_password(f"right-{uuid.uuid4().hex}")
    kwargs = pg_kwargs(driver, pg.kwargs(user=pg.password_role), app_name)
    pool = make_pool(module, password="wrong-secret", **BACKOFF, **kwargs)
    refused = _refused_twice(pool, module.Error)
    (note,) = refused.__notes__
    assert "the database refused the credentials (authentication failed; 1 connects" in note
    assert "unreachable" not in note
    (warning,) = _warnings(caplog)
    assert warning.startswith("pool 'faults': the database refused the credentials (")
    assert "wrong-secret" not in warning


@pytest.mark.parametrize("driver", pg_params())
def test_postgres_server_that_is_down_is_still_unreachable(
    driver: str, pg: PrivatePostgres, make_pool: PoolFactory, app_name: str
) -> None:
    module = load("pg8000.dbapi" if driver == "pg8000" else driver)
    kwargs = pg_kwargs(driver, pg.kwargs(), app_name)
    pool = make_pool(module, **BACKOFF, **kwargs)
    pg.stop()
    with pytest.raises(module.Error) as first:
        pool.get(timeout=15)
    assert not pool.profile.is_auth_error(first.value)
    with pytest.raises(module.Error) as second:
        pool.get(timeout=15)
    assert "the database is unreachable (1 connects failed" in second.value.__notes__[0]


@pytest.fixture
def mariadb_user() -> Iterator[str]:
    """Create a MariaDB user with the password 'right' on the shared server; drop it after."""
    pymysql = load("pymysql")
    user = f"u_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right'")
        yield user
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        admin.close()


@pytest.mark.mariadb
@pytest.mark.parametrize("driver", ["MySQLdb", "pymysql"])
def test_wrong_mariadb_password_is_named_a_refused_login(
    driver: str,
    mariadb_user: str,
    make_pool: PoolFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = load(driver)
    password: dict[str, Any] = (
        {"passwd": "wrong-secret"} if driver == "MySQLdb" else {"password": "wrong-secret"}
    )
    pool = make_pool(module, host="127.0.0.1", user=mariadb_user, **password, **BACKOFF)
    refused = _refused_twice(pool, module.OperationalError)
    assert refused.args[0] == 1045
    assert "refused the credentials (authentication failed" in refused.__notes__[0]
    (warning,) = _warnings(caplog)
    assert 'refused the credentials (OperationalError: (1045, "Access denied' in warning
    assert "wrong-secret" not in warning


@pytest.mark.mariadb
def test_mariadb_recovery_after_the_password_is_fixed_is_logged(
    mariadb_user: str, make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    pymysql = load("pymysql")
    caplog.set_level(logging.INFO, logger="dbapi_pool")
    secret = ["wrong"]
    pool = make_pool(
        pymysql,
        host="127.0.0.1",
        user=mariadb_user,
        connect_args=lambda: {"password": secret[0]},
        reconnect_min=0.01,
        reconnect_max=0.01,
    )
    with pytest.raises(pymysql.OperationalError):
        pool.get(timeout=15)
    secret[0] = "right"
    time.sleep(0.05)  # past the 10 ms backoff: the next get() makes an attempt
    conn = pool.get(timeout=15)
    pool.put(conn)
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "pool 'faults': connected again after 1 failed connects" in infos
