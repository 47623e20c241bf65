"""The readability probe of idle connections (``socket_readable``) and its fallback
(``select_readable``): they must answer alike, on a socket pair (no server needed)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from dbapi_pool._drivers.base import select_readable, socket_readable

Probe = Callable[[int], bool]
PROBES = [pytest.param(socket_readable, id="poll"), pytest.param(select_readable, id="select")]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("probe", PROBES)
def test_quiet_socket_is_not_readable(probe: Probe, pair: tuple[socket.socket, ...]) -> None:
    assert probe(pair[0].fileno()) is False


@pytest.mark.parametrize("probe", PROBES)
def test_socket_closed_by_the_peer_is_readable(
    probe: Probe, pair: tuple[socket.socket, ...]
) -> None:
    pair[1].close()
    assert probe(pair[0].fileno()) is True


@pytest.mark.parametrize("probe", PROBES)
def test_socket_with_data_waiting_is_readable(
    probe: Probe, pair: tuple[socket.socket, ...]
) -> None:
    pair[1].send(b"N")  # a notice or a notification: a ping decides
    assert probe(pair[0].fileno()) is True


@pytest.mark.parametrize("probe", PROBES)
def test_descriptor_that_is_no_socket_is_reported_readable(probe: Probe) -> None:
    # A ping then decides (and fails): never trust what cannot be probed.
    assert probe(-1) is True
    closed = socket.socket()
    fd = closed.fileno()
    closed.close()
    assert probe(fd) is True
