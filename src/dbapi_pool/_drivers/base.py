"""The driver profile: what the pool knows about one DB-API module.

A profile is data plus small functions, found by the module's name. Everything the pool
needs to know about a driver lives here rather than in ``if driver == ...`` branches.
"""

from __future__ import annotations

import math
import select
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SECRET_KWARGS",
    "DriverProfile",
    "cancel_through_new_session",
    "class_named",
    "rollback",
    "select_one",
    "select_readable",
    "socket_readable",
    "sqlstate_auth_error",
    "unnamed_cursor",
]

#: Connect arguments never shown anywhere (repr, log line, exception message).
SECRET_KWARGS = frozenset({"password", "passwd", "pass", "token", "secret", "sslpassword"})


def rollback(conn: Any) -> None:
    """Roll back whatever the borrower left open (the default reset)."""
    conn.rollback()


def class_named(*names: str) -> Callable[[Any], bool]:
    """Build a test: is an object's class, or one of its bases, named one of ``names``?

    Lets a profile recognise a driver's cursor classes without importing the driver.
    """
    wanted = frozenset(names)

    def test(obj: Any) -> bool:
        return any(cls.__name__ in wanted for cls in type(obj).__mro__)

    return test


def select_readable(fd: int) -> bool:
    """Tell whether a socket has something to read, through ``select()`` (zero timeout).

    The portable probe, and the fallback of :func:`socket_readable`; ``select()`` lets
    the GIL go, so beside a busy thread each call waits to take it back. Sockets above
    select()'s limit are reported readable, so that a real ping decides.
    """
    try:
        readable, _, _ = select.select([fd], [], [], 0)
    except (ValueError, OSError):
        return True
    return bool(readable)


def _gil_keeping_poll() -> Callable[[int], bool] | None:
    """Build a ``poll()`` probe called with the GIL held, or ``None`` where it can't be had.

    libc's ``poll()`` through ``ctypes.PyDLL`` (a CDLL call, like ``select()``, would
    release the GIL and then queue to take it back behind any busy thread): with a zero
    timeout it never blocks, so holding the GIL costs nobody anything.
    """
    try:
        import ctypes

        poll = ctypes.PyDLL(None)["poll"]  # this process's libc (POSIX)
    except (ImportError, OSError, AttributeError, TypeError):  # no ctypes, or Windows
        return None
    poll.restype = ctypes.c_int

    class PollFd(ctypes.Structure):  # struct pollfd
        _fields_ = (("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short))

    byref = ctypes.byref
    pollin = getattr(select, "POLLIN", 1)
    # Buffers are reused (a new struct costs more than the call): each probe takes one
    # off this list and puts it back, so no two threads, or green threads, share one.
    spare: list[tuple[Any, Any]] = []

    def readable(fd: int) -> bool:
        try:
            pollfd, ref = spare.pop()
        except IndexError:
            pollfd = PollFd(0, pollin, 0)
            ref = byref(pollfd)
        pollfd.fd = fd
        answer = poll(ref, 1, 0)
        spare.append((pollfd, ref))
        # Any answer but 0 says look closer: POLLIN (the server's goodbye, a notice, a
        # notification or EOF), POLLHUP or POLLERR (always reported), POLLNVAL (not an
        # open descriptor), or -1 (poll failed); the ping that follows decides. poll()
        # skips a negative descriptor (a closed connection's): that one is looked at too.
        return answer != 0 or fd < 0

    return readable


def _first_probe(fd: int) -> bool:
    global _probe
    _probe = _gil_keeping_poll() or select_readable  # ctypes is imported only when needed
    return _probe(fd)


_probe: Callable[[int], bool] = _first_probe


def socket_readable(fd: int) -> bool:
    """Tell whether an idle connection's socket has something to read (zero timeout).

    An idle connection's socket is readable once the server closed or reset it (or sent
    a notice). Costs no more than a ``select()`` and keeps the GIL where libc's
    ``poll()`` can be called through ctypes, so it may run at every checkout (figures in
    ``benchmarks/README.md``, "Probing idle connections"); elsewhere it is ``select()``.
    """
    return _probe(fd)


def select_one(conn: Any) -> None:
    """Ping with a ``SELECT 1`` round trip, leaving no transaction open."""
    cursor = conn.cursor()
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    finally:
        cursor.close()
    conn.rollback()


def sqlstate_auth_error(exc: BaseException) -> bool:
    """Tell an authentication failure by its SQLSTATE, where the driver exposes one as
    ``sqlstate`` (psycopg, MariaDB Connector/Python, fakedb in tests).

    Class 28 is the SQL standard's "invalid authorization specification" (PostgreSQL
    28000 and 28P01, MySQL's 1045 maps to 28000).
    """
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state.startswith("28")


def unnamed_cursor(cursor: Any) -> bool:
    """Tell a client-side cursor (psycopg's unnamed ones hold all their rows)."""
    return getattr(cursor, "name", None) is None


def cancel_through_new_session(statement: str) -> Callable[[Callable[[], Any], Any, Any], None]:
    """Build a ``cancel`` that runs ``statement % session_id`` on a short-lived session."""

    def cancel(connect: Callable[[], Any], conn: Any, session_id: Any) -> None:
        if session_id is None:
            return
        killer = connect()
        try:
            cursor = killer.cursor()
            cursor.execute(statement % int(session_id))
            cursor.close()
        finally:
            killer.close()

    return cancel


@dataclass(frozen=True)
class DriverProfile:
    """Describe a DB-API driver's conventions and quirks.

    ``url_keys`` maps the parts of a URL (host, port, user, password, database) to the
    driver's ``connect()`` keyword names; ``defaults`` are connect keywords the pool sets
    unless the user gave them (sqlite3's ``check_same_thread=False``).
    """

    name: str
    database_kwarg: str = "database"
    #: The driver's own connect-timeout keyword, if it has one that limits only connecting.
    connect_timeout_kwarg: str | None = None
    #: True when that keyword takes whole seconds (libpq, libmysqlclient).
    connect_timeout_integer: bool = False
    url_keys: Mapping[str, str] = field(
        default_factory=lambda: {
            "host": "host",
            "port": "port",
            "user": "user",
            "password": "password",
            "database": "database",
        }
    )
    defaults: Mapping[str, Any] = field(default_factory=dict)
    reset: Callable[[Any], None] = rollback
    #: Read, right after connecting, what identifies the session on the server (the
    #: backend pid, the MySQL thread id): later the connection may be too busy to ask.
    session_id: Callable[[Any], Any] | None = None
    #: Ask the server to stop the call a connection is running, from another thread:
    #: ``cancel(connect, conn, session_id)``, where ``connect()`` opens a new connection
    #: with the pool's arguments (for drivers that cancel through a second session).
    cancel: Callable[[Callable[[], Any], Any, Any], None] | None = None
    #: Tell, without I/O, that a connection has no transaction open (True only when
    #: sure): the pool then skips the rollback on return and the commit of an empty
    #: ``with`` block, each a round trip (figures in benchmarks/README.md).
    transaction_idle: Callable[[Any], bool] | None = None
    #: Tell that a cursor's fetches read rows already on the client (no I/O), so the
    #: async facade runs them inline instead of in the connection's thread.
    local_fetch: Callable[[Any], bool] | None = None
    #: Tell that closing a cursor does no I/O (the async facade then closes inline).
    local_close: Callable[[Any], bool] | None = None
    #: ``cooperates(backend, sockets_patched)``: tell whether the driver yields to a green
    #: hub by itself (then it is called directly; else its calls go to OS threads).
    cooperates: Callable[[str, bool], bool] | None = None
    #: ``green_fix(backend)``: the code that would make a driver that does not cooperate
    #: cooperate (psycopg2: psycogreen's wait callback), named in the warning of a pool
    #: that offloads it only for want of that code.
    green_fix: Callable[[str], str] | None = None
    #: The connection's socket, for the near-free readability probe of an idle connection
    #: (an idle socket with something to read has been closed or reset by the server).
    fileno: Callable[[Any], int] | None = None
    #: A real round trip that raises if the connection is dead.
    ping: Callable[[Any], None] | None = None
    #: Tell, without I/O, that the driver already knows its connection is dead.
    is_broken: Callable[[Any], bool] | None = None
    #: Tell whether an error means "this connection is dead" (a killed query, a syntax
    #: error... leave it usable).
    is_disconnect: Callable[[BaseException], bool] | None = None
    #: Clear all session state (``reset="full"``): DISCARD ALL, COM_RESET_CONNECTION.
    full_reset: Callable[[Any], None] | None = None
    #: Tell whether a connect error means the server refused the credentials (a wrong
    #: password, an unknown user): reported as such, not as the database being down.
    is_auth_error: Callable[[BaseException], bool] = sqlstate_auth_error
    #: Tell whether ``connect()`` takes a keyword its signature does not name (it takes
    #: ``**kwargs``, or is a C function): ``True``, ``False``, or ``None`` (can't tell).
    #: Checked when the pool is made, so a misspelt keyword fails then, not at checkout.
    takes_keyword: Callable[[str], bool | None] | None = None

    def green_advice(self, backend: str) -> str | None:
        """Tell how to make this driver cooperate with ``backend``'s hub when a line of
        set-up code would (``green_fix``): the warning of a pool that offloads it only
        for want of that line (issue 15). ``None`` if no such line is known."""
        if self.green_fix is None:
            return None
        return (
            f"{self.name}'s calls run in OS threads (pool.offloaded), since it blocks the "
            f"{backend} hub as it is; to have it cooperate, run `{self.green_fix(backend)}` "
            "after monkey-patching (or pass offload=True to keep the threads and silence "
            "this warning)"
        )

    def connect_kwargs(
        self, kwargs: Mapping[str, Any], connect_timeout: float | None
    ) -> dict[str, Any]:
        """Return the keywords for ``connect()``: the user's, plus the pool's defaults."""
        merged = {**self.defaults, **kwargs}
        key = self.connect_timeout_kwarg
        if key is not None and connect_timeout is not None and key not in merged:
            # The pool enforces the exact timeout itself; the driver's own limit, one second
            # later, only makes the stuck connect give up too, so its thread and slot come
            # back. (An equal limit raced the pool's: the caller got the driver's error.)
            driver_timeout = connect_timeout + 1
            merged[key] = (
                math.ceil(driver_timeout) if self.connect_timeout_integer else driver_timeout
            )
        return merged

    def describe(self, kwargs: Mapping[str, Any]) -> str:
        """Return a short name for a pool of these connections, without any secret."""
        host = kwargs.get("host") or kwargs.get("unix_socket") or ""
        port = kwargs.get("port")
        database = kwargs.get(self.database_kwarg) or ""
        where = f"{host}:{port}" if port else str(host)
        if where:
            return f"{self.name}://{where}/{database}"
        return f"{self.name}:{database}" if database else self.name
