"""Profiles of the MySQL / MariaDB drivers: mysqlclient (MySQLdb) and PyMySQL."""

from __future__ import annotations

import sys
from typing import Any

from .base import DriverProfile, cancel_through_new_session, class_named

# The server's thread id is read at connect time: mysqlclient refuses any call, even
# thread_id(), on a connection busy in another thread. KILL QUERY stops the statement and
# leaves the connection usable (error 1317 in the thread that ran it).
_KILL_QUERY = cancel_through_new_session("KILL QUERY %d")


def _thread_id(conn: Any) -> Any:
    return conn.thread_id()


def _pymysql_idle(conn: Any) -> bool:
    # Only an autocommit session (SERVER_STATUS_AUTOCOMMIT, 2) outside an explicit
    # transaction (SERVER_STATUS_IN_TRANS, 1) is surely idle: MariaDB does not flag the
    # read-only transaction a SELECT opens without autocommit, and that transaction would
    # hand the next borrower an old snapshot (and hold metadata locks).
    # A connection that lost its socket is not "idle": its reset must fail and close it.
    return bool(conn.open) and conn.server_status & 3 == 2


def _mariadb_library() -> str | None:
    """Return the path of MariaDB Connector/C if this process loaded it (and not Oracle's
    libmysqlclient), else ``None``."""
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux
        return None
    if any("libmysqlclient" in path for path in libraries):
        return None
    mariadb = sorted(p for p in libraries if p.rsplit("/", 1)[-1].startswith("libmariadb.so"))
    return mariadb[0] if mariadb else None


def _mysqldb_idle_test() -> Any:
    """Build mysqlclient's ``transaction_idle``, or ``None`` where it cannot be had.

    mysqlclient exposes no in-transaction flag, but MariaDB Connector/C (its library on
    Debian and most Linux distributions) answers ``mariadb_get_infov(mysql,
    MARIADB_CONNECTION_SERVER_STATUS)`` from the last reply, without I/O: far cheaper
    through ctypes than a ROLLBACK round trip (figures in ``benchmarks/README.md``). Only
    that library is trusted, found already loaded by mysqlclient; with Oracle's
    libmysqlclient the pool keeps rolling back.
    """
    try:
        import ctypes
    except ImportError:
        return None
    library = _mariadb_library()
    if library is None:
        return None
    try:
        # PyDLL: called with the GIL held. It reads a field of the handle (no I/O); through
        # CDLL it would release the GIL and wait to take it back beside a busy thread, at
        # every return of a connection (figures in benchmarks/README.md).
        get_infov = ctypes.PyDLL(library).mariadb_get_infov
    except (OSError, AttributeError):
        return None
    return _idle_through(get_infov)


def _idle_through(get_infov: Any) -> Any:
    """Build ``transaction_idle`` from Connector/C's ``mariadb_get_infov`` (a PyDLL one)."""
    import ctypes

    get_infov.restype = ctypes.c_char
    get_infov.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    server_status = 30  # MARIADB_CONNECTION_SERVER_STATUS in Connector/C 3.x

    def idle(conn: Any) -> bool:
        # Sure only of an open autocommit session outside an explicit transaction (the
        # same rule as PyMySQL's, below). The value read must agree with the library's
        # own autocommit flag (get_autocommit() reads the same status word): a check
        # that the enum still names the server status.
        status = ctypes.c_uint64(0)  # wide enough whatever the enum names
        try:
            if not conn.open:
                return False
            handle = get_pointer(
                conn._get_native_connection(), b"_mysql.connection.native_connection"
            )
            if get_infov(handle, server_status, ctypes.byref(status)) != b"\x00":
                return False
            value = status.value
            return value < 0x10000 and value & 3 == 2 and bool(conn.get_autocommit())
        except Exception:  # another mysqlclient, a stand-in, a closed handle: can't tell
            return False

    return idle


_MYSQLDB_IDLE: Any = None


def _mysqldb_idle(conn: Any) -> bool:
    global _MYSQLDB_IDLE
    if _MYSQLDB_IDLE is None:
        if "MySQLdb._mysql" not in sys.modules:  # not mysqlclient (a stand-in): can't tell
            return False
        # Built once mysqlclient is imported, when its C library is loaded.
        _MYSQLDB_IDLE = _mysqldb_idle_test() or (lambda conn: False)
    return bool(_MYSQLDB_IDLE(conn))


def _not(test: Any) -> Any:
    return lambda obj: not test(obj)


# Client errors meaning the connection is gone: 2003 can't connect, 2006 server gone away,
# 2013 lost connection, 2055 lost connection (system error), 4031 disconnected by the server
# (idle timeout), 1927 connection killed. 1317 (query interrupted, KILL QUERY) is not.
_MYSQL_DEAD = frozenset({2003, 2006, 2013, 2055, 4031, 1927})


def _mysql_disconnect(exc: BaseException) -> bool:
    if isinstance(exc, OSError):  # the socket itself failed (reset, broken pipe)
        return True
    code = exc.args[0] if exc.args else None
    if code in _MYSQL_DEAD:
        return True
    # PyMySQL's InterfaceError(0, '') after its socket is gone; mysqlclient's
    # "(2006, 'MySQL server has gone away')" is covered by the codes.
    return type(exc).__name__ == "InterfaceError"


# Access denied: 1045 (wrong user or password), 1044 (no right on the database), 1698
# (no password given where one is needed). MySQL's numbers, raised at connect time with the
# errno first in args by both mysqlclient and PyMySQL.
_MYSQL_AUTH = frozenset({1044, 1045, 1698})


def _mysql_auth_error(exc: BaseException) -> bool:
    return bool(exc.args) and exc.args[0] in _MYSQL_AUTH


# mysqlclient's connect() is ``Connection(*args, **kwargs)``: its keywords are read in
# Python (MySQLdb/connections.py) and by the C ``_mysql.connection`` (its kwlist), as of
# mysqlclient 2.2. A keyword a later version adds can still come through ``connect_args``.
_MYSQLDB_KEYWORDS = frozenset(
    {
        # connections.py
        "db",
        "passwd",
        "cursorclass",
        "collation",
        "use_unicode",
        "sql_mode",
        "binary_prefix",
        "executemany_fallback",
        "multi_statements",
        "autocommit",
        # _mysql.c
        "host",
        "user",
        "password",
        "database",
        "port",
        "unix_socket",
        "conv",
        "connect_timeout",
        "compress",
        "named_pipe",
        "init_command",
        "read_default_file",
        "read_default_group",
        "client_flag",
        "ssl",
        "ssl_mode",
        "local_infile",
        "read_timeout",
        "write_timeout",
        "charset",
        "auth_plugin",
        "server_public_key_path",
        "local_infile_dir",
    }
)


def _mysqldb_ping(conn: Any) -> None:
    conn.ping()  # mysqlclient reconnects only if told to (its argument is deprecated)


def _pymysql_ping(conn: Any) -> None:
    conn.ping(reconnect=False)  # never reconnect: that would swap the session under the pool


def _pymysql_reset_connection(conn: Any) -> None:
    # PyMySQL has no public call for COM_RESET_CONNECTION (0x1F): send the command and
    # read its OK packet, as MySQL Connector and mysqlclient's C API do.
    conn.rollback()
    conn._execute_command(0x1F, b"")
    conn._read_ok_packet()


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
    transaction_idle=_mysqldb_idle,
    local_fetch=_not(_UNBUFFERED),
    fileno=lambda conn: int(conn.fileno()),
    ping=_mysqldb_ping,
    is_broken=lambda conn: not getattr(conn, "open", True),
    is_disconnect=_mysql_disconnect,
    is_auth_error=_mysql_auth_error,
    takes_keyword=_MYSQLDB_KEYWORDS.__contains__,
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
    fileno=lambda conn: int(conn._sock.fileno()),
    ping=_pymysql_ping,
    is_broken=lambda conn: not getattr(conn, "open", True),
    is_disconnect=_mysql_disconnect,
    full_reset=_pymysql_reset_connection,
    is_auth_error=_mysql_auth_error,
)
