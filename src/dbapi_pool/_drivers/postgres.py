"""Profiles of the PostgreSQL drivers: psycopg2, psycopg (3) and pg8000."""

from __future__ import annotations

import re
from typing import Any

from .base import DriverProfile, cancel_through_new_session, select_one, unnamed_cursor

__all__ = ["PG8000", "PSYCOPG", "PSYCOPG2"]

_LIBPQ_KEYS = {
    "host": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "database": "dbname",
}

# libpq's connect_timeout is in whole seconds and covers only the connection attempt.


def _libpq_cancel(connect: Any, conn: Any, session_id: Any) -> None:
    # libpq's cancel request: thread-safe, on a separate socket, made for exactly this.
    conn.cancel()


def _psycopg_cancel(connect: Any, conn: Any, session_id: Any) -> None:
    # cancel_safe() (psycopg >= 3.2) does not block other threads while it waits.
    getattr(conn, "cancel_safe", conn.cancel)()


def _backend_pid(conn: Any) -> Any:
    cursor = conn.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    (pid,) = cursor.fetchone()
    cursor.close()
    conn.rollback()  # pg8000 opened a transaction for the SELECT
    return pid


def _psycopg2_idle(conn: Any) -> bool:
    # TRANSACTION_STATUS_IDLE (0); a broken connection reports UNKNOWN (4), not idle.
    # get_transaction_status() reads libpq directly (conn.info builds an object per call).
    return bool(conn.get_transaction_status() == 0)


def _psycopg_idle(conn: Any) -> bool:
    return bool(conn.pgconn.transaction_status == 0)


def _pg8000_idle(conn: Any) -> bool:
    return getattr(conn, "_in_transaction", True) is False


def _psycopg2_green(backend: str, sockets_patched: bool) -> bool:
    # psycogreen (gevent) or eventlet's monkey_patch() install a wait callback; without
    # one, libpq blocks the hub for the whole query.
    import psycopg2.extensions

    return psycopg2.extensions.get_wait_callback() is not None


def _psycopg2_green_fix(backend: str) -> str:
    # psycogreen installs the wait callback that _psycopg2_green looks for (issue 15: a
    # forgotten patch_psycopg() silently ran every query in OS threads).
    return f"from psycogreen.{backend} import patch_psycopg; patch_psycopg()"


def _psycopg_green(backend: str, sockets_patched: bool) -> bool:
    # psycopg >= 3.1.14 waits through gevent's hub by itself; it does not support eventlet.
    return backend == "gevent" and sockets_patched


def _pure_python_green(backend: str, sockets_patched: bool) -> bool:
    return sockets_patched


# SQLSTATE class 08 (connection exception), 57P01-57P03 (admin shutdown, crash shutdown,
# cannot connect now): the connection is gone. A cancelled query (57014) is not.
def _pg_dead_state(state: Any) -> bool:
    return isinstance(state, str) and (state.startswith("08") or state in _PG_DEAD)


_PG_DEAD = frozenset({"57P01", "57P02", "57P03"})


def _psycopg2_disconnect(exc: BaseException) -> bool:
    import psycopg2

    if _pg_dead_state(getattr(exc, "pgcode", None)):
        return True
    # libpq's own errors ("server closed the connection unexpectedly") carry no SQLSTATE.
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and (
        getattr(exc, "pgcode", None) is None
    )


def _psycopg_disconnect(exc: BaseException) -> bool:
    import psycopg

    if _pg_dead_state(getattr(exc, "sqlstate", None)):
        return True
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and (
        getattr(exc, "sqlstate", None) is None
    )


def _pg8000_disconnect(exc: BaseException) -> bool:
    import pg8000.dbapi

    if isinstance(exc, OSError):  # pg8000 lets socket errors (a reset...) through as is
        return True
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    if _pg_dead_state(detail.get("C")):
        return True
    return isinstance(exc, pg8000.dbapi.InterfaceError)


# Authentication failures (SQLSTATE class 28: 28P01 wrong password, 28000 unknown role or
# no pg_hba.conf entry): libpq reports a failed connect without its SQLSTATE, so psycopg2
# and psycopg are read by their messages (English ones: a translated message is reported
# as an outage, the safe side); "fe_sendauth: no password supplied" is libpq's own.
_LIBPQ_AUTH = re.compile(
    r'authentication failed for user|role ".*" does not exist|pg_hba\.conf|fe_sendauth'
)


def _libpq_auth_error(exc: BaseException) -> bool:
    return _pg_auth_state(getattr(exc, "sqlstate", getattr(exc, "pgcode", None))) or bool(
        _LIBPQ_AUTH.search(str(exc))
    )


def _pg_auth_state(state: Any) -> bool:
    return isinstance(state, str) and state.startswith("28")


def _pg8000_auth_error(exc: BaseException) -> bool:
    # pg8000 speaks the protocol itself: the server's error fields, with the SQLSTATE.
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    return _pg_auth_state(detail.get("C"))


# psycopg2.connect() and psycopg's pass keywords they do not name to libpq, which refuses
# an unknown one at connect time: ask libpq's own parser at construction instead.
def _psycopg2_takes(key: str) -> bool:
    import psycopg2.extensions

    if key in ("async", "async_", "database"):  # taken by psycopg2 itself
        return True
    try:
        psycopg2.extensions.make_dsn(**{key: "x"})
    except psycopg2.ProgrammingError:
        return False
    return True


def _psycopg_takes(key: str) -> bool:
    import psycopg
    import psycopg.conninfo

    try:
        psycopg.conninfo.make_conninfo(**{key: "x"})
    except psycopg.ProgrammingError:
        return False
    return True


def _discard_all(conn: Any) -> None:
    # DISCARD ALL cannot run inside a transaction block: roll back, then run it in
    # autocommit, and put the borrower's autocommit setting back.
    conn.rollback()
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        cursor = conn.cursor()
        cursor.execute("DISCARD ALL")
        cursor.close()
    finally:
        conn.autocommit = autocommit


PSYCOPG2 = DriverProfile(
    name="psycopg2",
    database_kwarg="dbname",
    connect_timeout_kwarg="connect_timeout",
    connect_timeout_integer=True,
    url_keys=_LIBPQ_KEYS,
    cancel=_libpq_cancel,
    transaction_idle=_psycopg2_idle,
    local_fetch=unnamed_cursor,
    local_close=unnamed_cursor,
    cooperates=_psycopg2_green,
    green_fix=_psycopg2_green_fix,
    fileno=lambda conn: int(conn.fileno()),
    ping=select_one,
    is_broken=lambda conn: bool(conn.closed),
    is_disconnect=_psycopg2_disconnect,
    full_reset=_discard_all,
    is_auth_error=_libpq_auth_error,
    takes_keyword=_psycopg2_takes,
)

PSYCOPG = DriverProfile(
    name="psycopg",
    database_kwarg="dbname",
    connect_timeout_kwarg="connect_timeout",
    connect_timeout_integer=True,
    url_keys=_LIBPQ_KEYS,
    cancel=_psycopg_cancel,
    transaction_idle=_psycopg_idle,
    local_fetch=unnamed_cursor,
    local_close=unnamed_cursor,
    cooperates=_psycopg_green,
    fileno=lambda conn: int(conn.fileno()),
    ping=select_one,
    # ACTIVE (1): returned mid-query (an open stream): a rollback would wait for ever on
    # the connection's lock, so it is closed instead.
    is_broken=lambda conn: bool(conn.closed or conn.broken or conn.pgconn.transaction_status == 1),
    is_disconnect=_psycopg_disconnect,
    full_reset=_discard_all,
    is_auth_error=_libpq_auth_error,
    takes_keyword=_psycopg_takes,
)

# pg8000's ``timeout`` is a socket timeout for every later query too, so the pool does not
# set it: a long query would be cut off. The pool's own connect_timeout still applies.
# pg8000 has no cancel request of its own: cancel through a second session.
PG8000 = DriverProfile(
    name="pg8000",
    session_id=_backend_pid,
    cancel=cancel_through_new_session("SELECT pg_cancel_backend(%d)"),
    transaction_idle=_pg8000_idle,
    local_fetch=lambda cursor: True,  # pg8000 reads every row during execute()
    local_close=lambda cursor: True,  # and its close() only drops them
    cooperates=_pure_python_green,
    fileno=lambda conn: int(conn._usock.fileno()),
    ping=select_one,
    is_disconnect=_pg8000_disconnect,
    full_reset=_discard_all,
    is_auth_error=_pg8000_auth_error,
)
