"""Fixtures of the fault tests: private servers, ChaosProxy instances and pools.

The private PostgreSQL, MariaDB and pgbouncer are started once per session, on the first
test that needs them, and stopped and deleted at the end; every test gets them back
running and in their default settings (a test that stopped a server or slowed its logins
down may have failed half-way). A missing binary fails the tests that need it; nothing is
ever skipped.

A test parametrised with ``adapters.on_servers`` gets the ``db`` fixture: the adapter of one
server kind and driver, so that a scenario both servers share is written once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

from .adapters import MariaDBAdapter, PostgresAdapter, ServerAdapter
from .chaosproxy import ChaosProxy, free_port
from .servers import PgBouncer, PrivateMariaDB, PrivatePostgres, ServerError, reap_stale
from .support import REPORT

#: Per-test bound (pytest-timeout): a hang fails one test instead of the whole run.
TEST_TIMEOUT = 90


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every fault test a time bound unless it sets its own."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the fault tests measured (connect storms and the like)."""
    if REPORT:
        terminalreporter.section("fault tests: measurements")
        for key, value in sorted(REPORT.items()):
            terminalreporter.write_line(f"{key}: {value}")


def _started(server: Any) -> Any:
    try:
        server.start()
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    return server


def _served(make: Callable[[int], Any]) -> Iterator[Any]:
    """Make a private server on a free port, start it, yield it and destroy it at the end."""
    try:
        server = make(free_port())
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield _started(server)
    finally:
        server.destroy()


def _fresh(server: Any) -> Iterator[Any]:
    """Yield a session's server running and with default settings; so leave it too."""
    _started(server)
    yield server
    _started(server)
    server.reset_defaults()


@pytest.fixture(scope="session")
def leftovers() -> list[Path]:
    """Remove the private servers of earlier test runs that died without cleaning up."""
    return reap_stale()


@pytest.fixture(scope="session")
def pg_server(leftovers: list[Path]) -> Iterator[PrivatePostgres]:
    """Start the private PostgreSQL cluster for the session; drop it at the end."""
    yield from _served(PrivatePostgres)


@pytest.fixture
def pg(pg_server: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """Return the private PostgreSQL, running and with default settings, before and after."""
    yield from _fresh(pg_server)


@pytest.fixture(scope="session")
def mariadb_server(leftovers: list[Path]) -> Iterator[PrivateMariaDB]:
    """Start the private MariaDB for the session; delete it at the end."""
    yield from _served(PrivateMariaDB)


@pytest.fixture
def mariadb(mariadb_server: PrivateMariaDB) -> Iterator[PrivateMariaDB]:
    """Return the private MariaDB, running and with default settings, before and after."""
    yield from _fresh(mariadb_server)


@pytest.fixture
def db(request: pytest.FixtureRequest, app_name: str) -> ServerAdapter:
    """Return the adapter of the server and driver this test runs with (see on_servers)."""
    kind, driver = request.param
    if kind == "pg":
        return PostgresAdapter(request.getfixturevalue("pg"), driver, app_name)
    return MariaDBAdapter(request.getfixturevalue("mariadb"), driver)


@pytest.fixture(scope="session")
def pgbouncer_server(pg_server: PrivatePostgres) -> Iterator[PgBouncer]:
    """Start pgbouncer (transaction mode) in front of the private PostgreSQL."""
    yield from _served(lambda port: PgBouncer(port, pg_server.port))


@pytest.fixture
def pgbouncer(pgbouncer_server: PgBouncer, pg: PrivatePostgres) -> Iterator[PgBouncer]:
    """Return pgbouncer, running and not paused, before and after the test."""
    _started(pgbouncer_server)
    yield pgbouncer_server
    if pgbouncer_server.running:
        try:
            pgbouncer_server.resume()
        except Exception:
            pass  # not paused: RESUME refuses, which is fine


@pytest.fixture
def app_name() -> str:
    """Return a fresh application_name, so the server can count this test's sessions."""
    return f"faults_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_proxy() -> Iterator[Callable[[int], ChaosProxy]]:
    """Return ``make_proxy(upstream_port)``; every proxy is closed after the test."""
    proxies: list[ChaosProxy] = []

    def make(upstream_port: int) -> ChaosProxy:
        proxy = ChaosProxy(upstream_port).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def make_pool() -> Iterator[Callable[..., ConnectionPool]]:
    """Return a ConnectionPool factory; every pool it made is closed after the test."""
    pools: list[ConnectionPool] = []

    def make(module: Any, **settings: Any) -> ConnectionPool:
        settings.setdefault("name", "faults")
        pool = ConnectionPool(module, **settings)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close(timeout=10)
