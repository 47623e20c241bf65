"""Profiles of the MySQL / MariaDB drivers: mysqlclient (MySQLdb) and PyMySQL."""

from __future__ import annotations

from typing import Any

from .base import DriverProfile, cancel_through_new_session

# The server's thread id is read at connect time: mysqlclient refuses any call, even
# thread_id(), on a connection busy in another thread. KILL QUERY stops the statement and
# leaves the connection usable (error 1317 in the thread that ran it).
_KILL_QUERY = cancel_through_new_session("KILL QUERY %d")


def _thread_id(conn: Any) -> Any:
    return conn.thread_id()


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
)

PYMYSQL = DriverProfile(
    name="pymysql",
    connect_timeout_kwarg="connect_timeout",
    session_id=_thread_id,
    cancel=_KILL_QUERY,
)
