"""Closes confirmed on the server (_closing.py): a socket pair stands for client and server.

The "client" connection's close() closes its end (as a driver does after sending its
goodbye); the "server" end closes when the test says so, standing for the server process
that exits a moment after it read the goodbye.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from dbapi_pool._closing import close_connections


class SocketConnection:
    """A driver connection over one end of a socket pair."""

    def __init__(self, sock: socket.socket, fail: bool = False) -> None:
        self.sock = sock
        self.fail = fail

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()
        if self.fail:
            raise OSError("close failed")


def fileno(conn: Any) -> int:
    return int(conn.fileno())


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_confirmed_close_returns_only_after_the_server_closed_its_end() -> None:
    client, server = socket.socketpair()
    server_closed = threading.Event()

    def server_exits() -> None:
        server_closed.wait(0.05)  # the server takes a moment to exit
        server_closed.set()
        server.close()

    thread = threading.Thread(target=server_exits)
    thread.start()
    errors = close_connections([SocketConnection(client)], fileno, confirm=True)
    assert server_closed.is_set()
    assert errors == [None]
    thread.join()


def test_a_routine_close_does_not_wait_for_the_server() -> None:
    client, server = socket.socketpair()
    try:
        errors = close_connections([SocketConnection(client)], fileno, confirm=False)
        assert errors == [None] and client.fileno() == -1
    finally:
        server.close()


def test_a_server_that_never_answers_is_waited_for_a_bounded_time() -> None:
    client, server = socket.socketpair()
    before = open_fds()
    try:
        assert close_connections([SocketConnection(client)], fileno, confirm=True) == [None]
        assert open_fds() == before - 1  # the client's end and its duplicate are closed
    finally:
        server.close()


def test_a_close_that_raises_is_reported_and_not_waited_for() -> None:
    client, server = socket.socketpair()
    before = open_fds()
    try:
        (error,) = close_connections([SocketConnection(client, fail=True)], fileno, True)
        assert isinstance(error, OSError)
        assert open_fds() == before - 1
    finally:
        server.close()


def test_connections_without_a_socket_are_closed_without_waiting() -> None:
    closed: list[bool] = []

    class NoSocket:
        def close(self) -> None:
            closed.append(True)

    assert close_connections([NoSocket(), NoSocket()], None, confirm=True) == [None, None]
    assert closed == [True, True]
