"""Profiles of the MySQL / MariaDB drivers: mysqlclient (MySQLdb) and PyMySQL."""

from __future__ import annotations

from .base import DriverProfile

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
)

PYMYSQL = DriverProfile(
    name="pymysql",
    connect_timeout_kwarg="connect_timeout",
)
