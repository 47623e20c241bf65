"""Close driver connections, and wait (bounded) for the server to end their sessions.

Why (issue 11, defect 1): a driver's ``close()`` sends its goodbye (PostgreSQL's Terminate,
MySQL's COM_QUIT) and returns; the server process or thread then exits on its own time,
and PostgreSQL removes the session from ``pg_stat_activity`` only as its backend exits.
Right after ``close()`` of three psycopg2 connections, one is usually still listed (raw
driver, no pool; benchmarks/README.md). Code that drops a database or fails over right after
``pool.close()`` then fails ("database is being accessed by other users").

So, for closes an operator asked for (:data:`CONFIRMED_REASONS`), and for drivers that
expose their socket (``profile.fileno``), the socket is duplicated before ``close()`` and
the duplicate is watched until the server closes its end (end of file), at most
:data:`CONFIRM_TIMEOUT` seconds for the whole batch; then the duplicate is closed. Holding
the duplicate keeps the client's end open, which is harmless: the server ends the session
on the goodbye message, not on the client's FIN. Routine closes (``max_age``, a broken
connection, ``max_idle == 0``...) do not wait: they are on the hot path.

Everything here is plain blocking code that touches only the driver and file descriptors
(no pool lock, no logging), so a green pool may run it in an OS thread; a green pool that
calls the driver directly passes a cooperative ``wait_readable`` instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "CONFIRMED_REASONS",
    "CONFIRM_TIMEOUT",
    "WaitReadable",
    "blocking_wait_readable",
    "close_connections",
    "green_wait_readable",
]

#: Close reasons whose closes are confirmed on the server: those of ``close()``,
#: ``clear()``, ``drain()`` and ``resize()`` (and of connections returned after them).
CONFIRMED_REASONS = frozenset({"pool_closed", "cleared", "drained", "resized"})

#: Seconds a batch of closes may wait for the server (an exit takes about a millisecond;
#: a server that went silent would never answer, hence the bound).
CONFIRM_TIMEOUT = 1.0

#: ``wait_readable(fd, timeout) -> bool``: True once ``fd`` is readable, False at timeout.
WaitReadable = Callable[[int, float], bool]


def close_connections(
    conns: Sequence[Any],
    fileno: Callable[[Any], int] | None,
    confirm: bool,
    wait_readable: WaitReadable | None = None,
) -> list[Exception | None]:
    """Close each driver connection; return, in order, the error each close raised.

    ``confirm``: then wait, up to :data:`CONFIRM_TIMEOUT` for all of them, for the server
    to close the sockets that ``fileno`` names (``wait_readable``: how to wait; default
    a blocking ``poll``).
    """
    errors: list[Exception | None] = []
    watched: list[int] = []
    for conn in conns:
        duplicate = _duplicate_socket(conn, fileno) if confirm else None
        try:
            conn.close()
        except Exception as exc:
            errors.append(exc)
            if duplicate is not None:  # no goodbye was sent, maybe: do not wait for it
                _os().close(duplicate)
            continue
        errors.append(None)
        if duplicate is not None:
            watched.append(duplicate)
    if watched:
        wait_for_eof(watched, time.monotonic() + CONFIRM_TIMEOUT, wait_readable)
    return errors


def _duplicate_socket(conn: Any, fileno: Callable[[Any], int] | None) -> int | None:
    if fileno is None:
        return None
    try:
        return int(_os().dup(fileno(conn)))
    except Exception:  # closed already, no socket (a unix socket path is fine too)
        return None


def wait_for_eof(fds: list[int], deadline: float, wait_readable: WaitReadable | None) -> int:
    """Wait until the peer closed each socket, or until ``deadline``; close the ``fds``.

    Returns how many were still open at the deadline.
    """
    wait = blocking_wait_readable if wait_readable is None else wait_readable
    os = _os()
    still_open = 0
    try:
        for fd in fds:
            if not _wait_one(fd, deadline, wait, os):
                still_open += 1
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
    return still_open


def _wait_one(fd: int, deadline: float, wait: WaitReadable, os: Any) -> bool:
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not wait(fd, left):
            return False
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            continue  # a spurious wake-up
        except OSError:  # reset by the peer: gone too
            return True
        if not data:
            return True
        # Bytes the server sent before leaving (a notice): read on to the end.


def blocking_wait_readable(fd: int, timeout: float) -> bool:
    """Block the calling OS thread until ``fd`` is readable or ``timeout`` passes."""
    poll = _original("select", "poll")()
    poll.register(fd, 0x001 | 0x008 | 0x010)  # POLLIN | POLLERR | POLLHUP
    return bool(poll.poll(max(0.0, timeout) * 1000))


def green_wait_readable(backend: str) -> WaitReadable:
    """Return a wait that parks only the calling green thread (``gevent``, ``eventlet``).

    From the hub itself (a hub callback, a finalizer run there) no green thread can be
    parked: the wait then blocks the hub, still bounded by :data:`CONFIRM_TIMEOUT`.
    """
    if backend == "gevent":
        return _gevent_wait_readable
    return _eventlet_wait_readable


def _gevent_wait_readable(fd: int, timeout: float) -> bool:
    import gevent
    from gevent.socket import wait_read

    if gevent.getcurrent() is gevent.get_hub():
        return blocking_wait_readable(fd, timeout)
    try:
        wait_read(fd, timeout)
    except Exception:  # the timeout (socket.timeout), or the fd went bad
        return False
    return True


def _eventlet_wait_readable(fd: int, timeout: float) -> bool:
    from eventlet import getcurrent
    from eventlet.hubs import get_hub, trampoline

    if getcurrent() is get_hub().greenlet:
        return blocking_wait_readable(fd, timeout)
    try:
        trampoline(fd, read=True, timeout=timeout, timeout_exc=TimeoutError)
    except Exception:
        return False
    return True


def _os() -> Any:
    # eventlet's monkey-patching makes os.read green; this runs in offload threads too.
    return _original_module("os")


def _original(module: str, name: str) -> Any:
    return getattr(_original_module(module), name)


def _original_module(module: str) -> Any:
    """Return ``module`` as it was before gevent or eventlet patched it."""
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None:
        return patcher.original(module)
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched(module):
        return _GeventOriginal(gevent_monkey, module)
    return __import__(module)


class _GeventOriginal:
    """The saved originals of a module gevent patched, with its unpatched names."""

    def __init__(self, monkey: Any, module: str) -> None:
        self._monkey = monkey
        self._module = __import__(module)
        self._name = module

    def __getattr__(self, name: str) -> Any:
        try:
            return self._monkey.get_original(self._name, name)
        except Exception:
            return getattr(self._module, name)
