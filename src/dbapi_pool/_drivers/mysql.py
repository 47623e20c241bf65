"""Profiles of the MySQL / MariaDB drivers: mysqlclient (MySQLdb) and PyMySQL."""

from __future__ import annotations

from typing import Any

from .base import DriverProfile, cancel_through_new_session, class_named

# The server's thread id is read at connect time: mysqlclient refuses any call, even
# thread_id(), on a connection busy in another thread. KILL QUERY stops the statement and
# leaves the connection usable (error 1317 in the thread that ran it).
_KILL_QUERY = cancel_through_new_session("KILL QUERY %d")


def _thread_id(conn: Any) -> Any:
    return conn.thread_id()


def _pymysql_idle(conn: Any) -> bool:
    # SERVER_STATUS_IN_TRANS (1) from the last OK/EOF packet: MariaDB opens a transaction
    # only when a statement touches a transactional table.
    # A connection that lost its socket is not "idle": its reset must fail and close it.
    return bool(conn.open) and not conn.server_status & 1


def _not(test: Any) -> Any:
    return lambda obj: not test(obj)


# Unbuffered ("SS") cursors read rows from the socket as they are fetched.
_UNBUFFERED = class_named("SSCursor", "SSDictCursor", "CursorUseResultMixIn")


__all__ = ["MYSQLDB", "PYMYSQL"]

MYSQLDB = DriverProfile(
    name="MySQLdb",
    database_kwarg="db",
    connect_timeout_kwarg="connect_timeout",
    connect_timeout_integer=True,
    url_keys={
        "host": "host",
        "port": "port",
        "user": "user",
        "password": "passwd",
        "database": "db",
    },
    session_id=_thread_id,
    cancel=_KILL_QUERY,
    local_fetch=_not(_UNBUFFERED),
)

PYMYSQL = DriverProfile(
    name="pymysql",
    connect_timeout_kwarg="connect_timeout",
    session_id=_thread_id,
    cancel=_KILL_QUERY,
    transaction_idle=_pymysql_idle,
    local_fetch=_not(_UNBUFFERED),
    # Pure Python: yields wherever its sockets do (mysqlclient's C library never does).
    cooperates=lambda backend, sockets_patched: sockets_patched,
)
