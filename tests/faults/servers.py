"""Private database servers for the fault tests: PostgreSQL, MariaDB and pgbouncer.

Each server lives in a temporary directory of its own, listens on its own loopback port
and is stopped and deleted by :meth:`destroy`; the shared servers (PostgreSQL on 5432,
MariaDB on 3306) are never touched. PostgreSQL and pgbouncer refuse to run as root, so
when the tests run as root their commands run as the ``postgres`` user; MariaDB runs as
``mysql``. A missing binary raises :class:`ServerError` with the package to install.
"""

from __future__ import annotations

import abc
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PgBouncer", "PrivateMariaDB", "PrivatePostgres", "ServerError", "reap_stale"]

#: application_name of the monitoring sessions (never counted, never killed).
MONITOR_NAME = "dbapi_faults_monitor"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """A private server could not be set up, started or stopped."""


def _find_binary(name: str, package: str, *candidates: str) -> str:
    for path in (*candidates, shutil.which(name)):
        if path and os.access(path, os.X_OK):
            return path
    raise ServerError(
        f"{name!r} not found: install it first (apt-get install -y {package}); the fault "
        "tests start private servers of their own"
    )


#: Every private server directory starts with this (and records its test process).
DIR_PREFIX = "dbapi-faults-"
OWNER_FILE = "owner.pid"


def _owned_tempdir(kind: str, user: str) -> Path:
    """Make a temporary directory that ``user`` owns (when running as root), recording
    which process made it (see :func:`reap_stale`)."""
    path = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{kind}-"))
    (path / OWNER_FILE).write_text(str(os.getpid()))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop_leftover(root: Path) -> None:
    """Stop a server a dead test run left in ``root``: only a process whose command line
    names this very directory, by the pid its own pid file gives."""
    for pidfile in ("data/postmaster.pid", "mariadb.pid", "pgbouncer.pid"):
        pid = _read_pid(root / pidfile)
        if pid is None or not _alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGQUIT if pidfile.startswith("data/") else signal.SIGTERM)


def reap_stale() -> list[Path]:
    """Remove private server directories of test runs that died without cleaning up.

    A directory whose recorded test process still runs (another run, right now) is left
    alone. Returns the directories removed.
    """
    removed = []
    for root in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        owner = _read_pid(root / OWNER_FILE)
        if owner is None or _alive(owner):
            continue
        _stop_leftover(root)
        time.sleep(0.5)  # let them go before their files do
        shutil.rmtree(root, ignore_errors=True)
        removed.append(root)
    return removed


def _as_user(user: str, argv: Sequence[str]) -> list[str]:
    if os.geteuid() != 0:
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


def _run(argv: Sequence[str], cwd: Path, timeout: float = START_TIMEOUT) -> None:
    try:
        done = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ServerError(f"{argv[0]} took longer than {timeout:g} s: {' '.join(argv)}") from exc
    if done.returncode != 0:
        raise ServerError(
            f"command failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}"
        )


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _poll(check: Any, timeout: float, what: str, log: Path) -> None:
    """Call ``check()`` until it returns true (exceptions count as false), or fail."""
    deadline = time.monotonic() + timeout
    error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:
            error = exc
        time.sleep(0.05)
    raise ServerError(f"{what} did not come up within {timeout:g} s ({error})\n{_tail(log)}")


def _scalar(conn: Any, sql: str, params: Any = None) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        row = cur.fetchone()
    finally:
        cur.close()
    return None if row is None else row[0]


def _rows(conn: Any, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def _end(process: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Send ``sig`` to a server process and wait for it (SIGKILL after a bound)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


class _PrivateServer(abc.ABC):
    """Hold what every private server has: a port, a directory of its own and a log in it.

    Subclasses name their directory (``kind``), its owner and log file, and say how to
    start and stop; :meth:`destroy` stops the server and deletes the directory.
    """

    #: The part of the directory's name that tells the server kind apart.
    kind: str
    #: The system user who owns the directory (and runs the server, as root).
    owner: str
    #: The server's log file, in its directory.
    log_name: str

    def __init__(self, port: int) -> None:
        self.port = port
        self._root: Path | None = None
        self._monitor: Any = None

    @property
    def root(self) -> Path:
        """Return the server's directory (created on first use)."""
        if self._root is None:
            self._root = _owned_tempdir(self.kind, self.owner)
        return self._root

    @property
    def log(self) -> Path:
        """Return the server's log file."""
        return self.root / self.log_name

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server; every session dies."""

    def reset_defaults(self) -> None:  # noqa: B027 (a hook: nothing to undo by default)
        """Undo the settings a test may have changed (and left changed if it failed)."""

    def _halt(self) -> None:
        """Stop the server for good (at the end of the run)."""
        self.stop()

    def destroy(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self._halt()
        finally:
            if self._root is not None:
                shutil.rmtree(self._root, ignore_errors=True)
                self._root = None

    def _drop_monitor(self) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.close()


# -- PostgreSQL ----------------------------------------------------------------------------


def _pg_bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    initdb = _find_binary("initdb", "postgresql", *found[-1:])
    return Path(initdb).parent


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parts
    try:
        return (int(parts[-3]),)
    except (ValueError, IndexError):
        return (0,)


class PrivatePostgres(_PrivateServer):
    """Run a throwaway PostgreSQL cluster on ``127.0.0.1:port`` (trust auth, user postgres).

    ``start()`` is idempotent; ``stop()``, ``restart()`` and ``kill_backends()`` inject
    faults; a monitoring connection (application_name :data:`MONITOR_NAME`) is kept open
    across ``set_pre_auth_delay()``, which would slow down any new one.
    """

    user = "postgres"
    dbname = "postgres"
    #: The one role that must log in with a password (scram-sha-256).
    password_role = "rotator"

    kind = "pg"
    owner = "postgres"
    log_name = "server.log"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self._bindir = _pg_bindir()

    @property
    def data(self) -> Path:
        return self.root / "data"

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Return libpq-style connect keywords for this server."""
        base = {"host": "127.0.0.1", "port": self.port, "user": self.user, "dbname": self.dbname}
        return {**base, **extra}

    def _pg(self, tool: str, *args: str, timeout: float = START_TIMEOUT) -> None:
        _run(_as_user(self.user, [str(self._bindir / tool), *args]), self.root, timeout)

    def _init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self._pg("initdb", "-D", str(self.data), "--auth=trust", "-U", self.user, "--no-sync")
        settings = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "100",
            "shared_buffers": "16MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# dbapi-pool fault tests\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        # One role logs in with a password (credential rotation tests); the rest is trust.
        hba = self.data / "pg_hba.conf"
        rule = f"host all {self.password_role} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())

    @property
    def running(self) -> bool:
        """Tell whether the postmaster is alive (its pid file names a live process)."""
        pid = _read_pid(self.data / "postmaster.pid")
        return pid is not None and _alive(pid)

    def start(self) -> None:
        """Create the cluster if needed and start it; do nothing if it runs already."""
        if self.running:
            return
        self._init()
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        _poll(self._ping, START_TIMEOUT, f"PostgreSQL on port {self.port}", self.log)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``smart``, ``fast`` or ``immediate``); every session dies."""
        self._drop_monitor()
        if self.running:
            self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop, then start the server again."""
        self.stop(mode)
        self.start()

    def _halt(self) -> None:
        self.stop("immediate")

    # -- monitoring ----------------------------------------------------------------------

    def connect(self, **extra: Any) -> Any:
        """Open a psycopg2 connection to this server (autocommit)."""
        import psycopg2

        conn = psycopg2.connect(**self.kwargs(connect_timeout=5, **extra))
        conn.autocommit = True
        return conn

    def _ping(self) -> bool:
        conn = self.connect(application_name=MONITOR_NAME)
        conn.close()
        return True

    def monitor(self) -> Any:
        """Return the monitoring connection, reconnecting after a restart."""
        if self._monitor is None or self._monitor.closed:
            self._monitor = self.connect(application_name=MONITOR_NAME)
        return self._monitor

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the monitoring connection (once more after a reconnect)."""
        import psycopg2

        try:
            return _rows(self.monitor(), sql, params)
        except psycopg2.OperationalError:
            self._drop_monitor()
            return _rows(self.monitor(), sql, params)

    def _client_filter(self, application_name: str | None) -> tuple[str, tuple[Any, ...]]:
        where = (
            "backend_type = 'client backend' AND pid <> pg_backend_pid() AND application_name <> %s"
        )
        params: tuple[Any, ...] = (MONITOR_NAME,)
        if application_name is not None:
            where += " AND application_name = %s"
            params += (application_name,)
        return where, params

    def kill_backends(self, application_name: str | None = None) -> set[int]:
        """Terminate the client sessions (of one application_name); return their pids."""
        where, params = self._client_filter(application_name)
        rows = self.query(
            f"SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}", params
        )
        return {pid for pid, ok in rows if ok}

    def terminate(self, pid: int) -> bool:
        """Terminate one backend by pid."""
        return bool(self.query("SELECT pg_terminate_backend(%s)", (pid,))[0][0])

    def cancel(self, pid: int) -> bool:
        """Cancel the statement one backend runs (pg_cancel_backend)."""
        return bool(self.query("SELECT pg_cancel_backend(%s)", (pid,))[0][0])

    def backend_pids(self, application_name: str) -> set[int]:
        """Return the pids of the client sessions with this application_name."""
        where, params = self._client_filter(application_name)
        return {
            pid for (pid,) in self.query(f"SELECT pid FROM pg_stat_activity WHERE {where}", params)
        }

    def backend_pids_all(self) -> set[int]:
        """Return the pids of every client session but the monitor's."""
        where, params = self._client_filter(None)
        return {
            pid for (pid,) in self.query(f"SELECT pid FROM pg_stat_activity WHERE {where}", params)
        }

    def count_connections(self, application_name: str) -> int:
        """Count the client sessions with this application_name."""
        return len(self.backend_pids(application_name))

    def states(self, application_name: str) -> list[str]:
        """Return the ``state`` of each session with this application_name."""
        where, params = self._client_filter(application_name)
        rows = self.query(f"SELECT state FROM pg_stat_activity WHERE {where}", params)
        return [state for (state,) in rows]

    def set_password(self, password: str) -> None:
        """Create :attr:`password_role` if needed and give it ``password``."""
        role = self.password_role
        self.query(
            f"DO $$ BEGIN CREATE ROLE {role} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        self.query(f"ALTER ROLE {role} PASSWORD %s", (password,))

    def reset_defaults(self) -> None:
        if self.pre_auth_delay() != "0":
            self.set_pre_auth_delay(0)

    def pre_auth_delay(self) -> str:
        """Return the server's pre_auth_delay setting as SHOW prints it ("0" when off)."""
        return str(self.query("SHOW pre_auth_delay")[0][0])

    def set_pre_auth_delay(self, seconds: int) -> None:
        """Make every new connection stall ``seconds`` before authentication (0: none)."""
        monitor = self.monitor()  # opened before the delay applies
        if seconds:
            _rows(monitor, f"ALTER SYSTEM SET pre_auth_delay = {int(seconds)}")
        else:
            _rows(monitor, "ALTER SYSTEM RESET pre_auth_delay")
        _rows(monitor, "SELECT pg_reload_conf()")
        wanted = f"{int(seconds)}s" if seconds else "0"
        _poll(
            lambda: _scalar(monitor, "SHOW pre_auth_delay") in (wanted, f"{int(seconds)}"),
            10.0,
            f"pre_auth_delay={seconds}",
            self.log,
        )
        if not seconds:
            _poll(self._ping, 15.0, "a connect without pre_auth_delay", self.log)


# -- MariaDB -------------------------------------------------------------------------------


class PrivateMariaDB(_PrivateServer):
    """Run a throwaway MariaDB on ``127.0.0.1:port`` (root without password, database test).

    :meth:`add_account` makes accounts without SUPER (for whom ``init_connect`` applies),
    one per test, so that each test can tell its own sessions apart.
    """

    user = "root"
    database = "test"

    kind = "mdb"
    owner = "mysql"
    log_name = "error.log"

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self._mariadbd = _find_binary("mariadbd", "mariadb-server", "/usr/sbin/mariadbd")
        self._install = _find_binary("mariadb-install-db", "mariadb-server")
        self._process: subprocess.Popen[bytes] | None = None

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Return PyMySQL connect keywords for root on this server."""
        base = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": "",
            "database": self.database,
        }
        return {**base, **extra}

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _init(self) -> None:
        data = self.root / "data"
        if (data / "mysql").exists():
            return
        _run(
            [
                self._install,
                "--user=mysql",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            self.root,
        )

    def start(self) -> None:
        """Create the data directory if needed and start the server (idempotent)."""
        if self.running:
            return
        self._init()
        argv = [
            self._mariadbd,
            "--no-defaults",
            f"--datadir={self.root / 'data'}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.root / 'mariadb.sock'}",
            f"--pid-file={self.root / 'mariadb.pid'}",
            f"--log-error={self.log}",
            "--innodb-buffer-pool-size=16M",
            "--skip-log-bin",
            "--max-connections=200",
        ]
        kwargs: dict[str, Any] = {"user": "mysql"} if os.geteuid() == 0 else {}
        self._process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
        )
        _poll(self._ready, START_TIMEOUT, f"MariaDB on port {self.port}", self.log)
        self._setup_database()

    def _ready(self) -> bool:
        if not self.running:
            raise ServerError(f"mariadbd exited\n{_tail(self.log)}")
        self.connect(database=None).close()
        return True

    def _setup_database(self) -> None:
        self.query(f"CREATE DATABASE IF NOT EXISTS {self.database}", database=None)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server with ``sig`` (SIGTERM: normal shutdown; SIGKILL: a crash)."""
        self._drop_monitor()
        process, self._process = self._process, None
        _end(process, sig)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (``kill -TERM`` by default), then start the server again."""
        self.stop(sig)
        self.start()

    # -- monitoring ----------------------------------------------------------------------

    def connect(self, **extra: Any) -> Any:
        """Open a PyMySQL connection as root (autocommit)."""
        import pymysql

        conn = pymysql.connect(**self.kwargs(connect_timeout=5, autocommit=True, **extra))
        return conn

    def query(self, sql: str, params: Any = None, **extra: Any) -> list[tuple[Any, ...]]:
        """Run ``sql`` on the monitoring connection (or on a fresh one with ``extra``)."""
        import pymysql

        if extra:
            conn = self.connect(**extra)
            try:
                return _rows(conn, sql, params)
            finally:
                conn.close()
        if self._monitor is None or not self._monitor.open:
            self._monitor = self.connect()
        try:
            return _rows(self._monitor, sql, params)
        except pymysql.OperationalError:
            self._drop_monitor()
            self._monitor = self.connect()
            return _rows(self._monitor, sql, params)

    def add_account(self, name: str, password: str = "pw") -> dict[str, Any]:
        """Create an account without SUPER, with every right on the test database; return
        PyMySQL connect keywords for it."""
        self.query(f"CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '{password}'")
        self.query(f"GRANT ALL ON {self.database}.* TO '{name}'@'%'")
        return self.kwargs(user=name, password=password)

    def kill(self, thread_id: int) -> None:
        """Kill one session (``KILL id``): its connection dies."""
        self.query(f"KILL {int(thread_id)}")

    def kill_query(self, thread_id: int) -> None:
        """Stop the statement one session runs (``KILL QUERY id``); the session stays."""
        self.query(f"KILL QUERY {int(thread_id)}")

    def count_connections(self, ids: Iterable[int]) -> int:
        """Count how many of these session ids are still on the server."""
        wanted = {int(i) for i in ids}
        if not wanted:
            return 0
        rows = self.query("SELECT ID FROM information_schema.PROCESSLIST")
        return len(wanted & {int(row[0]) for row in rows})

    def user_sessions(self, user: str) -> set[int]:
        """Return the session ids of one account."""
        rows = self.query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
        return {int(row[0]) for row in rows}

    def reset_defaults(self) -> None:
        self.set_init_connect("")

    def set_init_connect(self, sql: str) -> None:
        """Set the global ``init_connect`` (run at every login of a non-SUPER account)."""
        self.query("SET GLOBAL init_connect = %s", (sql,))


# -- pgbouncer -----------------------------------------------------------------------------


class PgBouncer(_PrivateServer):
    """Run pgbouncer on ``127.0.0.1:port`` in transaction mode in front of ``upstream_port``.

    Database ``appdb`` maps to the upstream's ``postgres`` database; the admin console is
    database ``pgbouncer`` for user ``postgres``. Retry and wait timeouts are short
    (``server_login_retry = 1``, ``query_wait_timeout`` 15 s) so outage tests end quickly.
    """

    user = "postgres"
    dbname = "appdb"

    kind = "pgb"
    owner = "postgres"
    log_name = "pgbouncer.log"

    def __init__(self, port: int, upstream_port: int, *, query_wait_timeout: int = 15) -> None:
        super().__init__(port)
        self.upstream_port = upstream_port
        self.query_wait_timeout = query_wait_timeout
        self._binary = _find_binary("pgbouncer", "pgbouncer", "/usr/sbin/pgbouncer")
        self._process: subprocess.Popen[bytes] | None = None

    def kwargs(self, **extra: Any) -> dict[str, Any]:
        """Return libpq-style connect keywords for ``appdb`` through pgbouncer."""
        base = {"host": "127.0.0.1", "port": self.port, "user": self.user, "dbname": self.dbname}
        return {**base, **extra}

    def _write_config(self) -> Path:
        ini = self.root / "pgbouncer.ini"
        upstream = f"host=127.0.0.1 port={self.upstream_port} dbname=postgres"
        ini.write_text(
            "[databases]\n"
            f"{self.dbname} = {upstream}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            "default_pool_size = 5\n"
            "max_client_conn = 200\n"
            "server_login_retry = 1\n"
            f"query_wait_timeout = {self.query_wait_timeout}\n"
            "server_check_query = select 1\n"
            "server_check_delay = 10\n"
            f"admin_users = {self.user}\n"
            f"stats_users = {self.user}\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        (self.root / "userlist.txt").write_text(f'"{self.user}" ""\n')
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            for path in (ini, self.root / "userlist.txt"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return ini

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Write the configuration and start pgbouncer in the foreground (idempotent)."""
        if self.running:
            return
        ini = self._write_config()
        argv = [self._binary, *(["-u", self.user] if os.geteuid() == 0 else []), str(ini)]
        self._process = subprocess.Popen(
            argv, cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _poll(self._ready, START_TIMEOUT, f"pgbouncer on port {self.port}", self.log)

    def _ready(self) -> bool:
        if not self.running:
            raise ServerError(f"pgbouncer exited\n{_tail(self.log)}")
        self.admin("SHOW VERSION")
        return True

    def stop(self) -> None:
        """Shut pgbouncer down (SIGINT: safe shutdown; SIGKILL after a bound)."""
        process, self._process = self._process, None
        _end(process, signal.SIGINT)

    def admin(self, command: str) -> list[tuple[Any, ...]]:
        """Run one admin-console command and return its rows (none for PAUSE, RESUME...)."""
        import psycopg2

        conn = psycopg2.connect(
            **self.kwargs(dbname="pgbouncer", connect_timeout=5, application_name=MONITOR_NAME)
        )
        conn.autocommit = True
        try:
            cur = conn.cursor()
            cur.execute(command)
            return list(cur.fetchall()) if cur.description else []
        finally:
            conn.close()

    def pause(self, database: str | None = None) -> None:
        """``PAUSE``: wait for server connections to be released, then hold new queries."""
        self.admin(f"PAUSE {database or self.dbname}")

    def resume(self, database: str | None = None) -> None:
        """``RESUME`` a paused database."""
        self.admin(f"RESUME {database or self.dbname}")

    def show(self, what: str) -> list[dict[str, Any]]:
        """Return ``SHOW <what>`` as dicts: ``POOLS`` (database, user, cl_active,
        cl_waiting, sv_*...), ``SERVERS`` (state, remote_pid...)."""
        import psycopg2

        conn = psycopg2.connect(**self.kwargs(dbname="pgbouncer", connect_timeout=5))
        conn.autocommit = True
        try:
            cur = conn.cursor()
            cur.execute(f"SHOW {what}")
            names = [col[0] for col in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            conn.close()
