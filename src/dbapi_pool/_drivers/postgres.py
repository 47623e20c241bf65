"""Profiles of the PostgreSQL drivers: psycopg2, psycopg (3) and pg8000."""

from __future__ import annotations

from .base import DriverProfile

__all__ = ["PG8000", "PSYCOPG", "PSYCOPG2"]

_LIBPQ_KEYS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "database": "dbname",
}

# libpq's connect_timeout is in whole seconds and covers only the connection attempt.
PSYCOPG2 = DriverProfile(
    name="psycopg2",
    database_kwarg="dbname",
    connect_timeout_kwarg="connect_timeout",
    connect_timeout_integer=True,
    url_keys=_LIBPQ_KEYS,
)

PSYCOPG = DriverProfile(
    name="psycopg",
    database_kwarg="dbname",
    connect_timeout_kwarg="connect_timeout",
    connect_timeout_integer=True,
    url_keys=_LIBPQ_KEYS,
)

# pg8000's ``timeout`` is a socket timeout for every later query too, so the pool does not
# set it: a long query would be cut off. The pool's own connect_timeout still applies.
PG8000 = DriverProfile(name="pg8000")
