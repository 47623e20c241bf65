"""One adapter per server kind, so that a fault scenario is written once for both servers.

A test asks for the ``db`` fixture (see conftest.py), parametrised with :func:`on_servers`;
it gets a :class:`PostgresAdapter` or a :class:`MariaDBAdapter` bound to one driver and to
this test's own sessions: PostgreSQL tells them apart by ``application_name``, MariaDB by
an account made for the test. Each adapter knows how to make a pool, name a session,
restart, stop or kill, cancel a statement, stall logins and leave session state, in its
server's own terms.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from dbapi_pool import ConnectionPool

from .pgdrivers import PG_DRIVERS, load, pg_kwargs
from .servers import PrivateMariaDB, PrivatePostgres
from .support import scalar, wait_until

__all__ = [
    "MYSQL_DRIVERS",
    "MariaDBAdapter",
    "PostgresAdapter",
    "ServerAdapter",
    "fill_idle",
    "mysql_kwargs",
    "on_servers",
]

MYSQL_DRIVERS = ("pymysql", "MySQLdb")
PoolFactory = Callable[..., ConnectionPool]


def on_servers(
    pg: tuple[str, ...] = PG_DRIVERS, mariadb: tuple[str, ...] = MYSQL_DRIVERS
) -> pytest.MarkDecorator:
    """Parametrise the ``db`` fixture over these drivers of each server (default: all)."""
    params = [
        pytest.param(("pg", name), id=f"pg-{name}", marks=pytest.mark.postgres) for name in pg
    ] + [
        pytest.param(("mariadb", name), id=f"mariadb-{name}", marks=pytest.mark.mariadb)
        for name in mariadb
    ]
    return pytest.mark.parametrize("db", params, indirect=True)


def mysql_kwargs(driver: str, server: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Return ``connect()`` keywords for ``driver`` from PyMySQL-style ``server`` keywords."""
    kwargs = {**server, **extra}
    if driver == "MySQLdb":
        kwargs["passwd"] = kwargs.pop("password")
        kwargs["db"] = kwargs.pop("database")
    return kwargs


def fill_idle(pool: Any, count: int, session_of: Callable[[Any], int]) -> set[int]:
    """Open ``count`` connections, return them all, and give their server session ids."""
    conns = [pool.get(timeout=15) for _ in range(count)]
    sessions = {session_of(conn) for conn in conns}
    for conn in conns:
        pool.put(conn)
    assert pool.stats().idle == count
    return sessions


class ServerAdapter(abc.ABC):
    """Drive one server kind through one driver; subclasses fill in the server's terms."""

    #: The statement that names the server session of a connection.
    session_sql: str
    #: The statement that sleeps 30 s on the server.
    sleep_sql: str

    def __init__(self, driver: str) -> None:
        self.driver = driver
        self.module = load(driver)

    @abc.abstractmethod
    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        """Return the driver's ``connect()`` keywords for this test's sessions."""

    @abc.abstractmethod
    def short_idle_timeout(self) -> dict[str, Any]:
        """Return connect keywords that make the server end a session idle for 1 s or less."""

    def pool(self, make_pool: PoolFactory, **settings: Any) -> ConnectionPool:
        """Make a pool (through ``make_pool``) of this test's sessions on the server.

        ``settings`` are the pool's; a ``connect`` mapping among them adds connect keywords.
        """
        extra = settings.pop("connect", {})
        return make_pool(self.module, **settings, **self.connect_kwargs(**extra))

    def session_of(self, conn: Any) -> int:
        """Return the server session id of a (pooled) connection."""
        return int(scalar(conn, self.session_sql))

    def fill_idle(self, pool: Any, count: int) -> set[int]:
        """Open ``count`` connections, return them all, and give their session ids."""
        return fill_idle(pool, count, self.session_of)

    @abc.abstractmethod
    def sessions(self) -> set[int]:
        """Return the ids of this test's sessions on the server."""

    @abc.abstractmethod
    def kill(self, session: int) -> None:
        """End one session on the server and wait until it is gone."""

    @abc.abstractmethod
    def cancel(self, session: int) -> None:
        """Stop the statement one session runs; the session stays."""

    @abc.abstractmethod
    def running(self, session: int) -> bool:
        """Tell whether the session is running a statement now."""

    @abc.abstractmethod
    def idle(self, session: int) -> bool:
        """Tell whether the session is there, running nothing, and in no transaction (the
        server may report it late: poll it with ``wait_until``)."""

    @abc.abstractmethod
    def is_cancelled(self, error: BaseException | None) -> bool:
        """Tell whether ``error`` is the driver's report of a cancelled statement."""

    @abc.abstractmethod
    def is_refused(self, error: BaseException) -> bool:
        """Tell whether ``error`` is the driver's report of a connect to a stopped server."""

    def dead_session_errors(self) -> tuple[type[BaseException], ...]:
        """Return what the driver raises for a statement on a killed session."""
        return (self.module.Error,)

    @abc.abstractmethod
    def restart(self) -> None:
        """Stop the server normally and start it again: every session dies."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server: every session dies and connects are refused."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server again after :meth:`stop`."""

    def late_login_settings(self) -> dict[str, Any]:
        """Return pool settings under which the driver waits out a stalled login."""
        return {}

    @abc.abstractmethod
    def stall_logins(self, seconds: int) -> None:
        """Make every new login stall ``seconds`` (0: no more stall)."""

    @abc.abstractmethod
    def create_table(self) -> str:
        """Create an empty table of this test's own; return its name as the pool sees it."""

    @abc.abstractmethod
    def rows_in(self, table: str) -> int:
        """Count the committed rows of ``table`` (from a session of the server's own)."""

    @abc.abstractmethod
    def leave_session_state(self, conn: Any) -> None:
        """Change a session setting and create a temporary table on ``conn``."""

    @abc.abstractmethod
    def session_state_is_clean(self, conn: Any) -> bool:
        """Tell whether no setting or temporary table of :meth:`leave_session_state` is left."""


class PostgresAdapter(ServerAdapter):
    """Drive the private PostgreSQL; this test's sessions carry its ``application_name``."""

    session_sql = "SELECT pg_backend_pid()"
    sleep_sql = "SELECT pg_sleep(30)"

    def __init__(self, server: PrivatePostgres, driver: str, app_name: str) -> None:
        super().__init__(driver)
        self.server = server
        self.app_name = app_name

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        return pg_kwargs(self.driver, self.server.kwargs(), self.app_name, **extra)

    def short_idle_timeout(self) -> dict[str, Any]:
        return {"options": "-c idle_session_timeout=300"}

    def sessions(self) -> set[int]:
        return self.server.backend_pids(self.app_name)

    def kill(self, session: int) -> None:
        # Sending a statement while the backend is still exiting can earn a TCP reset
        # instead of its goodbye; pg8000 then raises a bare ConnectionResetError (see F8).
        assert self.server.terminate(session)
        assert wait_until(lambda: session not in self.server.backend_pids_all(), 15)
        time.sleep(0.05)

    def cancel(self, session: int) -> None:
        assert self.server.cancel(session)

    def _state(self, session: int) -> str | None:
        rows = self.server.query("SELECT state FROM pg_stat_activity WHERE pid = %s", (session,))
        return str(rows[0][0]) if rows else None

    def running(self, session: int) -> bool:
        return self._state(session) == "active"

    def idle(self, session: int) -> bool:
        return self._state(session) == "idle"

    def is_cancelled(self, error: BaseException | None) -> bool:
        return isinstance(error, self.module.Error) and "cancel" in str(error).lower()

    def is_refused(self, error: BaseException) -> bool:
        return isinstance(error, self.module.Error)

    def dead_session_errors(self) -> tuple[type[BaseException], ...]:
        # pg8000 does not wrap a reset met while reading: a bare ConnectionResetError.
        return (self.module.Error, ConnectionResetError)

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def late_login_settings(self) -> dict[str, Any]:
        return {"connect_args": lambda: {"connect_timeout": 30}}  # libpq itself waits 30 s

    def stall_logins(self, seconds: int) -> None:
        self.server.set_pre_auth_delay(seconds)

    def create_table(self) -> str:
        name = f"t_{self.app_name}"
        self.server.query(f"CREATE TABLE {name} (x int)")
        return name

    def rows_in(self, table: str) -> int:
        return int(self.server.query(f"SELECT count(*) FROM {table}")[0][0])

    def leave_session_state(self, conn: Any) -> None:
        scalar(conn, "SELECT set_config('statement_timeout', '12345', false)")
        conn.cursor().execute("CREATE TEMP TABLE leftover (x int)")

    def session_state_is_clean(self, conn: Any) -> bool:
        timeout = scalar(conn, "SHOW statement_timeout")
        no_table = scalar(conn, "SELECT to_regclass('pg_temp.leftover') IS NULL")
        return bool(timeout == "0" and no_table in (True, 1))


class MariaDBAdapter(ServerAdapter):
    """Drive the private MariaDB; this test's sessions log in with an account of its own
    (without SUPER, so ``init_connect`` applies to them)."""

    session_sql = "SELECT CONNECTION_ID()"
    sleep_sql = "SELECT SLEEP(30)"

    def __init__(self, server: PrivateMariaDB, driver: str) -> None:
        super().__init__(driver)
        self.server = server
        self.account = f"f_{uuid.uuid4().hex[:12]}"
        self._account_kwargs = server.add_account(self.account)

    def connect_kwargs(self, **extra: Any) -> dict[str, Any]:
        return mysql_kwargs(self.driver, self._account_kwargs, **extra)

    def short_idle_timeout(self) -> dict[str, Any]:
        return {"init_command": "SET SESSION wait_timeout=1"}

    def sessions(self) -> set[int]:
        return self.server.user_sessions(self.account)

    def kill(self, session: int) -> None:
        self.server.kill(session)
        assert wait_until(lambda: self.server.count_connections([session]) == 0, 15)

    def cancel(self, session: int) -> None:
        self.server.kill_query(session)

    def _process(self, session: int) -> tuple[Any, ...] | None:
        rows = self.server.query(
            "SELECT COMMAND, INFO FROM information_schema.PROCESSLIST WHERE ID = %s", (session,)
        )
        return rows[0] if rows else None

    def running(self, session: int) -> bool:
        row = self._process(session)
        return row is not None and row[0] == "Query" and row[1] is not None

    def idle(self, session: int) -> bool:
        # INNODB_TRX is a cache InnoDB refreshes at most every 0.1 s: poll this, never
        # trust one reading.
        row = self._process(session)
        transactions = self.server.query(
            "SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id = %s",
            (session,),
        )[0][0]
        return row is not None and row[0] == "Sleep" and transactions == 0

    def is_cancelled(self, error: BaseException | None) -> bool:
        # 1317: ER_QUERY_INTERRUPTED, what KILL QUERY earns the statement.
        return isinstance(error, self.module.OperationalError) and error.args[0] == 1317

    def is_refused(self, error: BaseException) -> bool:
        # 2003: can't connect (PyMySQL); mysqlclient says 2002 for the same refusal.
        return isinstance(error, self.module.OperationalError) and error.args[0] in (2002, 2003)

    def restart(self) -> None:
        self.server.restart()  # kill -TERM, then start

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server.start()

    def stall_logins(self, seconds: int) -> None:
        # init_connect runs after authentication; the driver's connect timeout ends at
        # the handshake, so only the pool's own bound stops the wait.
        self.server.set_init_connect(f"DO SLEEP({int(seconds)})" if seconds else "")

    def create_table(self) -> str:
        # No DROP at the end: it could wait on a pooled session's metadata lock, and the
        # private server goes away with the run.
        name = f"{self.server.database}.t_{uuid.uuid4().hex[:12]}"
        self.server.query(f"CREATE TABLE {name} (x INT) ENGINE=InnoDB")
        return name

    def rows_in(self, table: str) -> int:
        return int(self.server.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def leave_session_state(self, conn: Any) -> None:
        conn.cursor().execute("SET @secret = 'left over'")
        conn.cursor().execute("CREATE TEMPORARY TABLE leftover (x INT)")

    def session_state_is_clean(self, conn: Any) -> bool:
        secret = scalar(conn, "SELECT @secret")
        conn.cursor().execute("CREATE TEMPORARY TABLE leftover (x INT)")  # 1050 if kept
        return secret is None
