"""Fixtures of the integration tests: real drivers against the real servers.

``dbenv`` is parametrised over every driver (psycopg2, psycopg, pg8000, MySQLdb, pymysql,
sqlite3), ``net_dbenv`` over the network ones; a test may narrow either with
``@pytest.mark.parametrize("dbenv", driver_params("psycopg2", ...), indirect=True)``.
A missing driver or server fails the test: nothing here is ever skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import DRIVERS, NETWORK_DRIVERS, Blackhole, Database, driver_params


def _database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database(DRIVERS[request.param], tmp_path)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture(params=driver_params())
def dbenv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """One driver and its server (every driver in turn); pools and tables cleaned up."""
    yield from _database(request, tmp_path)


@pytest.fixture(params=driver_params(*NETWORK_DRIVERS))
def net_dbenv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """Like ``dbenv``, for the drivers that talk to a server over TCP."""
    yield from _database(request, tmp_path)


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    """A loopback listener that accepts TCP connections and never answers."""
    hole = Blackhole()
    try:
        yield hole
    finally:
        hole.close()
