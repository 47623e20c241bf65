"""The ChaosProxy itself: plain sockets against an echo server, then psycopg2 against the
private PostgreSQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import psycopg2
import pytest

from .chaosproxy import ChaosProxy, free_port
from .servers import PrivatePostgres
from .support import BackgroundCall, elapsed, scalar, wait_until

ProxyFactory = Callable[[int], ChaosProxy]


class EchoServer:
    """Echo every byte back, one daemon thread per connection, until closed."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._echo, args=(sock,), daemon=True).start()

    def _echo(self, sock: socket.socket) -> None:
        sock.settimeout(0.05)
        with sock:
            while not self._stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                sock.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """Run an echo server on a loopback port."""
    server = EchoServer()
    yield server
    server.close()


def dial(proxy: ChaosProxy, timeout: float = 5.0) -> socket.socket:
    """Connect a plain socket to the proxy."""
    return socket.create_connection(proxy.address, timeout=timeout)


def roundtrip(sock: socket.socket, payload: bytes = b"ping") -> bytes:
    """Send ``payload`` and read back as many bytes."""
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def closed_at_once(proxy: ChaosProxy) -> bool:
    """Tell whether a new connection through the proxy is closed or reset unanswered."""
    try:
        with dial(proxy) as sock:
            return sock.recv(16) == b""
    except ConnectionResetError:  # the reset may even beat the end of connect()
        return True


def test_passes_bytes_through_and_counts_connections(
    echo: EchoServer, make_proxy: ProxyFactory
) -> None:
    """Forward bytes both ways; count accepted and live connections."""
    proxy = make_proxy(echo.port)
    with dial(proxy) as a, dial(proxy) as b:
        assert roundtrip(a, b"hello") == b"hello"
        big = bytes(range(256)) * 4096  # 1 MiB: more than one chunk, both directions
        assert roundtrip(b, big) == big
        assert proxy.connections_seen == 2
        assert proxy.active_connections == 2
    assert wait_until(lambda: proxy.active_connections == 0, 10)
    assert proxy.connections_seen == 2


def test_latency_delays_each_direction(echo: EchoServer, make_proxy: ProxyFactory) -> None:
    """Hold every chunk ``latency`` seconds each way: a round trip takes at least twice it."""
    proxy = make_proxy(echo.port)
    with dial(proxy) as sock:
        roundtrip(sock)
        proxy.set_latency(0.2)
        with elapsed() as took:
            assert roundtrip(sock) == b"ping"
        assert took[0] >= 0.4
        proxy.set_latency(0)
        assert roundtrip(sock) == b"ping"


def test_stall_holds_bytes_until_resume(echo: EchoServer, make_proxy: ProxyFactory) -> None:
    """Forward nothing while stalled; deliver what was held once resumed."""
    proxy = make_proxy(echo.port)
    with dial(proxy) as sock:
        proxy.stall()
        sock.sendall(b"held")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(16)
        proxy.resume()
        sock.settimeout(10)
        assert sock.recv(16) == b"held"


@pytest.mark.parametrize("rst", [True, False], ids=["rst", "fin"])
def test_cut_all_resets_or_closes_clients(
    echo: EchoServer, make_proxy: ProxyFactory, rst: bool
) -> None:
    """End every link: the client reads a reset (rst) or an end of stream (fin)."""
    proxy = make_proxy(echo.port)
    with dial(proxy) as sock:
        assert roundtrip(sock) == b"ping"
        assert proxy.cut_all(rst=rst) == 1
        assert proxy.active_connections == 0
        if rst:
            with pytest.raises(ConnectionResetError):
                sock.recv(16)
        else:
            assert sock.recv(16) == b""
    with dial(proxy) as again:  # new connections still go through
        assert roundtrip(again) == b"ping"


def test_refuse_then_accept(echo: EchoServer, make_proxy: ProxyFactory) -> None:
    """Refuse new connects at once; keep the links already up; accept again later."""
    proxy = make_proxy(echo.port)
    with dial(proxy) as up:
        proxy.refuse()
        with elapsed() as took, pytest.raises(ConnectionRefusedError):
            dial(proxy)
        assert took[0] < 5
        assert roundtrip(up) == b"ping"
        proxy.accept()
        with dial(proxy) as sock:
            assert roundtrip(sock) == b"ping"
    assert proxy.connections_seen == 2


def test_deaf_listener_never_answers(echo: EchoServer, make_proxy: ProxyFactory) -> None:
    """Leave connects hanging while deaf (TCP may complete, nothing is ever forwarded)."""
    proxy = make_proxy(echo.port)
    proxy.deaf()
    socks: list[socket.socket] = []
    try:
        for _ in range(3):
            try:
                sock = socket.create_connection(proxy.address, timeout=1)
            except TimeoutError:
                continue  # backlog full: the SYN is dropped, the connect hangs
            socks.append(sock)
            sock.sendall(b"anyone?")
            with pytest.raises(TimeoutError):
                sock.recv(16)
        assert proxy.connections_seen == 0
    finally:
        for sock in socks:
            sock.close()
    proxy.hear()
    with dial(proxy) as sock:
        assert roundtrip(sock) == b"ping"
    assert proxy.connections_seen == 1


def test_dead_upstream_closes_the_client(make_proxy: ProxyFactory) -> None:
    """Accept (and count) a client, then close it when the upstream refuses."""
    proxy = make_proxy(free_port())
    for _ in range(3):
        assert closed_at_once(proxy)
    assert proxy.connections_seen == 3
    assert wait_until(lambda: proxy.active_connections == 0, 10)


def test_max_connections_bounds_the_links(echo: EchoServer) -> None:
    """Reset clients beyond ``max_connections`` instead of starting more threads."""
    with ChaosProxy(echo.port, max_connections=2) as proxy:
        socks = [dial(proxy) for _ in range(2)]
        try:
            for sock in socks:
                assert roundtrip(sock) == b"ping"
            assert closed_at_once(proxy)
            assert proxy.active_connections == 2
        finally:
            for sock in socks:
                sock.close()


def test_close_stops_everything(echo: EchoServer) -> None:
    """End every link and the listener; no proxy thread is left."""
    proxy = ChaosProxy(echo.port).start()
    sock = dial(proxy)
    assert roundtrip(sock) == b"ping"
    proxy.close()
    assert proxy.active_connections == 0
    assert sock.recv(16) == b""
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        dial(proxy)
    assert wait_until(
        lambda: not any(t.name.startswith("chaosproxy") for t in threading.enumerate()), 10
    )


def test_only_loopback_upstreams() -> None:
    """Refuse to forward anywhere but 127.0.0.1."""
    with pytest.raises(ValueError):
        ChaosProxy(5432, "10.0.0.1")


# -- with a real driver --------------------------------------------------------------------


def pg_connect(
    pg: PrivatePostgres, proxy: ChaosProxy, **extra: object
) -> psycopg2.extensions.connection:
    """Connect psycopg2 to the private PostgreSQL through the proxy."""
    return psycopg2.connect(**pg.kwargs(port=proxy.port, **extra))


@pytest.mark.postgres
def test_psycopg2_passes_and_sees_rst(pg: PrivatePostgres, make_proxy: ProxyFactory) -> None:
    """Query through the proxy; after an RST the next query fails and the connection is broken."""
    proxy = make_proxy(pg.port)
    conn = pg_connect(pg, proxy)
    try:
        assert scalar(conn, "SELECT 41 + 1") == 42
        proxy.cut_all(rst=True)
        with pytest.raises(psycopg2.OperationalError):
            scalar(conn, "SELECT 1")
        assert conn.closed == 2
    finally:
        conn.close()


@pytest.mark.postgres
def test_psycopg2_stall_and_latency(pg: PrivatePostgres, make_proxy: ProxyFactory) -> None:
    """Block a query while stalled and finish it after resume; add latency to a round trip."""
    proxy = make_proxy(pg.port)
    conn = pg_connect(pg, proxy)
    try:
        proxy.stall()
        call = BackgroundCall(scalar, conn, "SELECT 7")
        time.sleep(1.0)
        assert not call.done
        proxy.resume()
        assert call.join().result == 7
        proxy.set_latency(0.1)
        with elapsed() as took:
            assert scalar(conn, "SELECT 8") == 8
        assert took[0] >= 0.2
    finally:
        conn.close()


@pytest.mark.postgres
def test_psycopg2_refused_and_deaf(pg: PrivatePostgres, make_proxy: ProxyFactory) -> None:
    """Refused: the connect fails at once; deaf: libpq's connect_timeout ends it."""
    proxy = make_proxy(pg.port)
    proxy.refuse()
    with pytest.raises(psycopg2.OperationalError, match="refused"):
        pg_connect(pg, proxy)
    proxy.deaf()
    with elapsed() as took, pytest.raises(psycopg2.OperationalError, match="timeout"):
        pg_connect(pg, proxy, connect_timeout=2)
    assert took[0] >= 1.5
    proxy.hear()
    conn = pg_connect(pg, proxy)
    assert scalar(conn, "SELECT 1") == 1
    conn.close()
