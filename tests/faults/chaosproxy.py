"""ChaosProxy: an in-process TCP proxy that injects network faults between a client and a server.

Stdlib only, threads only. One accept thread owns the listening socket; each proxied
connection (a *link*) has one thread that owns both of its sockets and moves bytes with
``select()`` in 50 ms slices, so every fault is applied within about 50 ms and no socket is
ever closed by a thread other than its owner. Faults:

- ``set_latency(s)``: every chunk is held ``s`` seconds in each direction (a round trip
  gains ``2 * s``);
- ``stall()`` / ``resume()``: stop moving bytes in both directions (the TCP connections
  stay up and keep acknowledging: an application-level hang, not a blackhole);
- ``cut_all(rst=True)``: close every client socket with ``SO_LINGER`` 0 (the client sees a
  reset) and the server socket normally;
- ``refuse()`` / ``accept()``: no listener at all, so connects are refused at once;
- ``deaf()`` / ``hear()``: a listener with backlog 0 that never accepts, so connects hang;
- ``connections_seen`` counts accepted client connections (a reconnect storm shows up
  here), ``active_connections`` counts the links alive now.

Every wait is bounded, every thread is a daemon, and :meth:`ChaosProxy.close` stops them all.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import threading
import time
from collections import deque
from types import TracebackType

__all__ = ["ChaosProxy", "free_port"]

#: How often every thread re-checks the proxy's settings (seconds).
TICK = 0.05
#: Bytes buffered per direction before the proxy stops reading from that side.
MAX_BUFFER = 1 << 20
#: How long a mode change or ``cut_all()`` waits for the threads to apply it.
APPLY_TIMEOUT = 10.0

SERVE = "serve"
REFUSE = "refuse"
DEAF = "deaf"


def free_port() -> int:
    """Return a free loopback port below the ephemeral range.

    Ports from ``bind(0)`` are ephemeral ones, which an outgoing connection may take while
    the proxy has closed its listener (``refuse()``); these are not handed out that way.
    """
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port found in 20000-32000")


def _listener(port: int, backlog: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _close(sock: socket.socket | None, *, rst: bool = False) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        if rst:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


class _Pipe:
    """Bytes read from ``src`` and not yet written to ``dst``, each with its due time."""

    __slots__ = ("chunks", "dst", "eof", "forwarded_eof", "size", "src")

    def __init__(self, src: socket.socket, dst: socket.socket) -> None:
        self.src = src
        self.dst = dst
        self.chunks: deque[tuple[float, bytes]] = deque()
        self.size = 0
        self.eof = False
        self.forwarded_eof = False

    def due(self, now: float) -> bool:
        return bool(self.chunks) and self.chunks[0][0] <= now

    def next_due(self) -> float | None:
        return self.chunks[0][0] if self.chunks else None

    def read(self, now: float, latency: float) -> None:
        """Read what ``src`` has, to be written ``latency`` seconds from now."""
        try:
            data = self.src.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            self.chunks.append((now + latency, data))
            self.size += len(data)
        else:
            self.eof = True

    def forward_eof(self) -> None:
        """Pass an end of stream on once everything before it was written."""
        if self.eof and not self.chunks and not self.forwarded_eof:
            self.forwarded_eof = True
            with contextlib.suppress(OSError):
                self.dst.shutdown(socket.SHUT_WR)

    def flush(self, now: float) -> None:
        """Write what is due, as much as ``dst`` accepts without blocking."""
        while self.chunks and self.chunks[0][0] <= now:
            due, data = self.chunks[0]
            try:
                sent = self.dst.send(data)
            except (BlockingIOError, InterruptedError):
                return
            self.size -= sent
            if sent < len(data):
                self.chunks[0] = (due, data[sent:])
                return
            self.chunks.popleft()


class _Link:
    """One proxied connection: a client socket, its server socket, and the thread moving bytes."""

    def __init__(self, proxy: ChaosProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server: socket.socket | None = None
        #: ``None``, or how to end the link: ``"rst"`` or ``"fin"`` (set by other threads).
        self.cut: str | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaosproxy link", daemon=True)

    def _run(self) -> None:
        rst = False
        try:
            self.server = self._connect_upstream()
            if self.server is not None:
                rst = self._pump(self.server)
        except OSError:
            pass  # a reset or a closed peer: the link is over
        finally:
            _close(self.client, rst=rst)
            _close(self.server)
            self.proxy._forget(self)
            self.done.set()

    def _connect_upstream(self) -> socket.socket | None:
        proxy = self.proxy
        try:
            server = socket.create_connection(proxy.upstream, timeout=proxy.upstream_timeout)
        except OSError:
            return None  # upstream down: the client sees its connection closed
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return server

    def _pump(self, server: socket.socket) -> bool:
        """Move bytes until both sides are done or the link is cut; return True for RST."""
        client = self.client
        client.setblocking(False)
        server.setblocking(False)
        pipes = (_Pipe(client, server), _Pipe(server, client))
        proxy = self.proxy
        while True:
            if self.cut is not None:
                return self.cut == "rst"
            if proxy._closing.is_set():
                return False
            flowing = proxy._flowing.is_set()
            now = time.monotonic()
            readers = [p.src for p in pipes if flowing and not p.eof and p.size < MAX_BUFFER]
            writers = [p.dst for p in pipes if flowing and p.due(now)]
            readable, writable, _ = select.select(readers, writers, [], self._wait(pipes, now))
            now = time.monotonic()
            for pipe in pipes:
                if pipe.dst in writable:
                    pipe.flush(now)
                if pipe.src in readable:
                    pipe.read(now, proxy.latency)
                pipe.forward_eof()
            if all(p.eof and not p.chunks for p in pipes):
                return False

    def _wait(self, pipes: tuple[_Pipe, _Pipe], now: float) -> float:
        dues = [d for d in (p.next_due() for p in pipes) if d is not None and d > now]
        return min([TICK, *(d - now for d in dues)])


class ChaosProxy:
    """Forward TCP connections from ``127.0.0.1:port`` to ``upstream``, with faults on demand.

    ``port`` 0 picks a free one (see :attr:`port`). Use as a context manager, or call
    :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        *,
        port: int = 0,
        max_connections: int = 256,
        upstream_timeout: float = 5.0,
    ) -> None:
        if upstream_host not in ("127.0.0.1", "localhost"):
            raise ValueError("ChaosProxy forwards to loopback addresses only")
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.max_connections = max_connections
        self.upstream_timeout = upstream_timeout
        self.latency = 0.0
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._seen = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = threading.Event()
        self._wanted = SERVE
        self._applied: str | None = None
        self._applied_event = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> ChaosProxy:
        """Start listening and forwarding; return the proxy."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._serve, name="chaosproxy accept", daemon=True)
        self._thread.start()
        self._wait_applied(SERVE)
        return self

    def close(self) -> None:
        """Stop accepting, end every link, and join the threads (bounded)."""
        self._closing.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(APPLY_TIMEOUT)
        for link in self._snapshot():
            link.done.wait(APPLY_TIMEOUT)

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults --------------------------------------------------------------------------

    def set_latency(self, seconds: float) -> None:
        """Hold every chunk ``seconds`` before forwarding it, in each direction."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = seconds

    def stall(self) -> None:
        """Stop forwarding bytes in both directions (connections stay open)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Forward again, delivering what was held back."""
        self._flowing.set()

    def cut_all(self, rst: bool = True) -> int:
        """End every link now: the client sees a reset (``rst``) or an orderly close.

        Returns how many links were cut; they are all gone when this returns.
        """
        links = self._snapshot()
        for link in links:
            link.cut = "rst" if rst else "fin"
        for link in links:
            if not link.done.wait(APPLY_TIMEOUT):
                raise RuntimeError("chaosproxy: a link did not end after cut_all()")
        return len(links)

    def refuse(self) -> None:
        """Close the listener: new connects are refused at once (links already up stay)."""
        self._set_mode(REFUSE)

    def deaf(self) -> None:
        """Listen without ever accepting: new connects hang (links already up stay)."""
        self._set_mode(DEAF)

    def accept(self) -> None:
        """Accept and forward new connections again (after ``refuse()`` or ``deaf()``)."""
        self._set_mode(SERVE)

    def hear(self) -> None:
        """Accept and forward new connections again (the opposite of ``deaf()``)."""
        self._set_mode(SERVE)

    # -- observation ---------------------------------------------------------------------

    @property
    def connections_seen(self) -> int:
        """Return how many client connections the proxy has accepted since it started."""
        with self._lock:
            return self._seen

    @property
    def active_connections(self) -> int:
        """Return how many proxied connections are alive now."""
        with self._lock:
            return len(self._links)

    @property
    def address(self) -> tuple[str, int]:
        """Return the ``(host, port)`` clients connect to."""
        return ("127.0.0.1", self.port)

    # -- internals -----------------------------------------------------------------------

    def _snapshot(self) -> list[_Link]:
        with self._lock:
            return list(self._links)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def _set_mode(self, mode: str) -> None:
        if self._thread is None:
            raise RuntimeError("chaosproxy: start() it first")
        with self._lock:
            self._wanted = mode
        self._wait_applied(mode)

    def _wait_applied(self, mode: str) -> None:
        deadline = time.monotonic() + APPLY_TIMEOUT
        with self._applied_event:
            while self._applied != mode:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"chaosproxy: could not switch to {mode!r}")
                self._applied_event.wait(left)

    def _open_listener(self, mode: str) -> socket.socket | None:
        if mode == REFUSE:
            return None
        # Rebinding the same port can fail for a moment while the old socket goes away.
        for _ in range(100):
            try:
                return _listener(self.port, 0 if mode == DEAF else 128)
            except OSError:
                time.sleep(TICK)
        raise RuntimeError(f"chaosproxy: cannot listen on port {self.port}")

    def _serve(self) -> None:
        listener: socket.socket | None = None
        mode: str | None = None
        try:
            while not self._closing.is_set():
                with self._lock:
                    wanted = self._wanted
                if wanted != mode:
                    _close(listener)
                    listener = None
                    listener = self._open_listener(wanted)
                    mode = wanted
                    with self._applied_event:
                        self._applied = mode
                        self._applied_event.notify_all()
                if listener is None or mode == DEAF:
                    time.sleep(TICK)
                    continue
                readable, _, _ = select.select([listener], [], [], TICK)
                if readable:
                    self._accept_one(listener)
        finally:
            _close(listener)
            for link in self._snapshot():
                link.cut = "fin"

    def _accept_one(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(self, client)
        with self._lock:
            self._seen += 1
            full = len(self._links) >= self.max_connections
            if not full:
                self._links.add(link)
        if full:
            _close(client, rst=True)
            return
        link.thread.start()
