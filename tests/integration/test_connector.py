"""DatabaseConnector with real servers: one pool per (host, database)."""

from __future__ import annotations

from typing import Any

import pytest

from dbapi_pool import ConnectionPool, DatabaseConnector
from dbapi_pool.errors import PoolClosed, UnknownHost

from .support import Database, driver_params, scalar


def _credentials(dbenv: Database, tag: str) -> dict[str, Any]:
    """Connect keywords that make the session say which credentials entry it came from."""
    if dbenv.server == "postgres":
        return {"user": "postgres", "application_name": f"{dbenv.new_marker()}_{tag}"}
    return {"user": "root", "passwd": "", "init_command": f"SET @dbapi_pool_entry = '{tag}'"}


def _entry_used(dbenv: Database, pool: ConnectionPool) -> tuple[str, Any]:
    """Check out a connection, run SELECT 1; return its credentials tag and session id."""
    with pool.connection() as conn:
        assert scalar(conn, "SELECT 1") == 1
        if dbenv.server == "postgres":
            tag = scalar(conn, "SELECT current_setting('application_name')").rsplit("_", 1)[1]
        else:
            tag = scalar(conn, "SELECT @dbapi_pool_entry")
        if isinstance(tag, bytes):
            tag = tag.decode()
        return tag, dbenv.session_id(conn)


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "MySQLdb"), indirect=True)
def test_connector_pools_per_host(dbenv: Database) -> None:
    credentials = {
        "127.0.0.1": _credentials(dbenv, "loopback"),
        "default": _credentials(dbenv, "default"),
    }
    connector = DatabaseConnector(dbenv.module, credentials, max_size=2)
    dbenv.defer(connector.close)

    loopback = connector.get("127.0.0.1", "test")
    assert connector.get("127.0.0.1", "test") is loopback
    assert isinstance(loopback, ConnectionPool)
    tag, loopback_session = _entry_used(dbenv, loopback)
    assert tag == "loopback"

    # 'localhost' has no entry of its own: the 'default' one serves it (for MySQLdb,
    # 'localhost' means the unix socket).
    local = connector.get("localhost", "test")
    assert local is not loopback
    assert connector.get("localhost", "test") is local
    tag, local_session = _entry_used(dbenv, local)
    assert tag == "default"

    assert set(connector.pools()) == {("127.0.0.1", "test"), ("localhost", "test")}
    assert dbenv.alive_count([loopback_session, local_session]) == 2

    connector.close()
    assert loopback.closed
    assert local.closed
    with pytest.raises(PoolClosed):
        loopback.get()
    with pytest.raises(PoolClosed):
        connector.get("127.0.0.1", "other")
    assert dbenv.wait_gone([loopback_session, local_session]), "sessions left open by close()"


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "MySQLdb"), indirect=True)
def test_connector_without_default_refuses_unknown_host(dbenv: Database) -> None:
    connector = DatabaseConnector(dbenv.module, {"127.0.0.1": _credentials(dbenv, "loopback")})
    dbenv.defer(connector.close)
    with pytest.raises(UnknownHost) as info:
        connector.get("localhost", "test")
    assert isinstance(info.value, KeyError)
    assert "localhost" in str(info.value)
    assert connector.pools() == {}
    tag, _ = _entry_used(dbenv, connector.get("127.0.0.1", "test"))
    assert tag == "loopback"


@pytest.mark.parametrize("dbenv", driver_params("psycopg2", "pymysql"), indirect=True)
def test_connector_drains_one_host_and_checks_every_pool(dbenv: Database) -> None:
    kwargs = dict(dbenv.spec.base_kwargs)
    kwargs.pop("host")
    kwargs.pop("dbname", None)
    kwargs.pop("database", None)
    connector = DatabaseConnector(dbenv.module, {"default": kwargs}, max_size=2)
    dbenv.defer(connector.close)
    loopback, local = connector.get("127.0.0.1", "test"), connector.get("localhost", "test")
    sessions = []
    for pool in (loopback, local):
        with pool.connection() as conn:
            sessions.append(dbenv.session_id(conn))
    connector.drain(host="127.0.0.1")
    if dbenv.server == "postgres":
        assert dbenv.alive_count(sessions[:1]) == 0  # at once: drain() waited for it
    assert dbenv.wait_gone(sessions[:1])
    assert dbenv.is_alive(sessions[1])
    connector.resize(max_size=1)
    assert loopback.config.max_size == local.config.max_size == 1
    killer = "SELECT pg_terminate_backend(%s)" if dbenv.server == "postgres" else None
    if killer is not None:
        dbenv.monitor_query(killer, [int(sessions[1])])
    else:
        dbenv.monitor_execute(f"KILL {int(sessions[1])}")
    assert dbenv.wait_gone(sessions[1:])
    assert connector.check() == 1
    connector.pause()
    assert loopback.paused and local.paused
    connector.resume()
    with local.connection() as conn:
        assert dbenv.session_id(conn) != sessions[1]
