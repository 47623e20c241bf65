"""Backends of the blocking pool: how callers wait, and where blocking driver calls run.

Three: OS threads (the default), gevent and eventlet. Everything is looked up at call time
(``threading.Lock``, never ``from threading import Lock``) so that monkey-patching done after
``import dbapi_pool`` still applies, and gevent and eventlet are imported only when chosen:
the core imports without them.

Under a green backend a blocked ``get()`` parks only its green thread, even when
``threading`` is not patched, and a driver that would block the hub (mysqlclient, psycopg2
without a wait callback, sqlite3...) runs each whole operation in an OS thread pool.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["BACKENDS", "Backend", "detect_backend", "get_backend"]


class Signal(Protocol):
    """A waiter's wake-up: created taken; ``acquire`` waits, ``release`` wakes."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class Sleeper(Protocol):
    """What a maintenance worker sleeps on: ``wait(timeout)``, woken early by ``set()``."""

    def wait(self, timeout: float | None) -> None: ...

    def set(self) -> None: ...


class Joinable(Protocol):
    """A handle on background work: ``join(timeout)`` and ``is_alive()``, as a Thread."""

    def join(self, timeout: float | None = None) -> Any: ...

    def is_alive(self) -> bool: ...


class Backend:
    """Supply the primitives of OS threads; green backends override them."""

    name = "threads"
    green = False

    def holder_id(self) -> Callable[[], Any]:
        """Return what identifies the caller (``pool.holders()``): the thread's ident."""
        return threading.get_ident

    def new_signal(self) -> Signal:
        """Return a taken lock: the waiter's ``acquire`` blocks until ``release``."""
        lock = threading.Lock()
        lock.acquire()
        return lock

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> Joinable:
        """Run ``fn(*args)`` in the background (a daemon thread)."""
        thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
        thread.start()
        return thread

    def new_sleeper(self) -> Sleeper:
        """Return something to sleep on until a deadline or a ``set()``."""
        return _EventSleeper(threading.Event())

    def offloader(self, size: int) -> Callable[..., Any] | None:
        """Return ``run(fn, *args)`` that runs a call in an OS thread, or ``None``."""
        return None

    def sockets_patched(self) -> bool:
        """Tell whether sockets yield to the hub (pure-Python drivers then cooperate)."""
        return False


def green_label(greenlet: Any) -> str:
    """Name a green thread for ``holders()`` (a string: holding the greenlet itself would
    keep its result, maybe the very connection, alive)."""
    name = getattr(greenlet, "name", None)  # gevent's Greenlet has one
    return f"greenlet {name!r}" if name else f"greenlet 0x{id(greenlet):x}"


class _EventSleeper:
    __slots__ = ("_event",)

    def __init__(self, event: Any) -> None:
        self._event = event

    def wait(self, timeout: float | None) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def set(self) -> None:
        self._event.set()


class GeventBackend(Backend):
    """Wait on gevent primitives; offload to a gevent ThreadPool the pool owns.

    The hub's own pool has ``maxsize`` 10, which caps a larger pool, hence a pool of our
    own sized for ``max_size``.
    """

    name = "gevent"
    green = True

    def holder_id(self) -> Callable[[], Any]:
        from gevent import getcurrent

        return lambda: green_label(getcurrent())

    def new_signal(self) -> Signal:
        from gevent.lock import Semaphore

        return Semaphore(0)  # type: ignore[no-any-return]

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> Joinable:
        import gevent

        return _GreenletHandle(gevent.spawn(fn, *args))

    def new_sleeper(self) -> Sleeper:
        from gevent.event import Event

        return _EventSleeper(Event())

    def offloader(self, size: int) -> Callable[..., Any]:
        from gevent.threadpool import ThreadPool

        pool = ThreadPool(maxsize=size)
        return lambda fn, *args: pool.apply(fn, args)

    def sockets_patched(self) -> bool:
        from gevent import monkey

        return bool(monkey.is_module_patched("socket"))


class _SemaphoreSleeper:
    """Sleep on an eventlet semaphore: ``set()`` releases it (eventlet's Event is one-shot)."""

    __slots__ = ("_sem",)

    def __init__(self) -> None:
        from eventlet.semaphore import Semaphore

        self._sem = Semaphore(0)

    def wait(self, timeout: float | None) -> None:
        self._sem.acquire(True, timeout)
        while self._sem.acquire(False):  # fold several set() calls into one wake-up
            pass

    def set(self) -> None:
        self._sem.release()


#: eventlet's, bound by the first EventletBackend (imported only if chosen).
_get_hub: Callable[[], Any]
_getcurrent: Callable[[], Any]


class _EventletSignal:
    """A waiter's wake-up on eventlet's hub: one green thread waits, one release wakes it.

    eventlet's ``Semaphore(0)`` does the same for any number of waiters (a deque of them,
    an ``eventlet.Timeout`` per timed wait, a re-check loop), slower per checkout
    (figures in benchmarks/README.md).
    As eventlet's, it belongs to the OS thread whose hub it waits on.
    """

    __slots__ = ("_up", "_waiting")

    def __init__(self) -> None:
        self._up = False
        self._waiting: Any = None  # the green thread inside acquire()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if self._up:
            self._up = False
            return True
        if not blocking or (timeout is not None and timeout <= 0):
            return False
        hub = _get_hub()
        self._waiting = _getcurrent()
        timer = None if timeout is None else hub.schedule_call_global(timeout, self._wake)
        try:
            while not self._up:
                if timer is not None and timer.called:
                    return False
                hub.switch()  # back when released (or at the timeout)
        finally:
            self._waiting = None
            if timer is not None:
                timer.cancel()
        self._up = False
        return True

    def release(self) -> None:
        self._up = True
        if self._waiting is not None:
            _get_hub().schedule_call_global(0, self._wake)

    def _wake(self) -> None:
        waiting = self._waiting  # None once its acquire() ended (a kill, a timeout)
        if waiting is not None:
            waiting.switch()


class _GreenletHandle:
    __slots__ = ("_greenlet",)

    def __init__(self, greenlet: Any) -> None:
        self._greenlet = greenlet

    def join(self, timeout: float | None = None) -> None:
        self._greenlet.join(timeout)

    def is_alive(self) -> bool:
        return not self._greenlet.dead


class _GreenThreadHandle:
    __slots__ = ("_thread",)

    def __init__(self, thread: Any) -> None:
        self._thread = thread

    def join(self, timeout: float | None = None) -> None:
        import eventlet

        with eventlet.Timeout(timeout, False):
            self._thread.wait()

    def is_alive(self) -> bool:
        return not self._thread.dead


class EventletBackend(Backend):
    """Wait on eventlet primitives; offload to OS threads of the pool's own."""

    name = "eventlet"
    green = True

    def __init__(self) -> None:
        global _get_hub, _getcurrent
        from eventlet import getcurrent
        from eventlet.hubs import get_hub

        _get_hub, _getcurrent = get_hub, getcurrent

    def holder_id(self) -> Callable[[], Any]:
        return lambda: green_label(_getcurrent())

    def new_signal(self) -> Signal:
        return _EventletSignal()

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> Joinable:
        import eventlet

        return _GreenThreadHandle(eventlet.spawn(fn, *args))

    def new_sleeper(self) -> Sleeper:
        return _SemaphoreSleeper()

    def offloader(self, size: int) -> Callable[..., Any]:
        return _EventletHops(size)

    def sockets_patched(self) -> bool:
        from eventlet import patcher

        return bool(patcher.is_monkey_patched("socket"))


def _ignore(*args: Any) -> None:
    """Do nothing (a listener's throwback: the pipe is never closed under it)."""


class _EventletHops:
    """Run calls in OS threads for eventlet's green threads: one cheap hop per call.

    eventlet's own tpool is slow a hop (a Python ``queue.Queue`` each way, 20 threads
    contending for the GIL). Here: jobs go through C ``SimpleQueue`` (which
    monkey-patching leaves alone) to ``size`` threads of the pool's own; results come
    back through a deque, and a pipe, watched by a listener of the hub of the thread
    that made the first call, wakes the hub. It is written only when no wake-up is
    pending, so a busy hub drains several results per wake-up.
    Threads start with the first call and stop with :meth:`close`, which the pool calls
    when it is collected (connections it lent out still offload their calls after the
    pool is closed, and each holds the pool).

    The pipe's write end belongs to the worker threads: only they write to it, and the
    last one to stop closes it, after its own last write. ``close()`` never touches it
    (it once wrote a wake-up byte there, racing the last worker's close of the same
    descriptor: EBADF, or a byte into whatever file reused the number; issue 11).
    """

    def __init__(self, size: int) -> None:
        from eventlet import patcher

        self._os = patcher.original("os")  # the green os.read/write would trampoline
        self._threading = patcher.original("threading")
        self._size = size
        self._jobs: Any = None
        self._done: deque[tuple[Any, bool, Any]] = deque()
        self._wake_pending = False
        self._pipe: tuple[int, int] | None = None
        self._closed = False
        self._running = 0
        self._hub: Any = None
        self._listener: Any = None
        self._exit_lock = self._threading.Lock()

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        from eventlet.event import Event

        if self._jobs is None:
            self._start()
        event = Event()
        self._jobs.put((event, fn, args))
        ok, value = event.wait()
        if ok:
            return value
        raise value

    def _start(self) -> None:
        import _queue

        from eventlet.hubs import get_hub

        if self._closed:
            raise RuntimeError("offloading after the pool closed")
        read_end, write_end = self._os.pipe()
        self._os.set_blocking(read_end, False)
        self._pipe = (read_end, write_end)
        self._jobs = _queue.SimpleQueue()
        self._running = self._size
        for number in range(self._size):
            self._threading.Thread(
                target=self._work, name=f"dbapi-pool offload #{number}", daemon=True
            ).start()
        # A listener that stays registered (trampoline() would add and remove the pipe
        # from epoll at every wake-up: two system calls each time).
        hub = get_hub()
        self._hub = hub
        self._listener = hub.add(hub.READ, read_end, self._deliver, _ignore, None)

    def _work(self) -> None:
        get, done, write = self._jobs.get, self._done, self._os.write
        assert self._pipe is not None
        write_end = self._pipe[1]
        while True:
            job = get()
            if job is None:
                break
            event, fn, args = job
            try:
                outcome = (event, True, fn(*args))
            except BaseException as exc:  # raised in the green thread that asked
                outcome = (event, False, exc)
            done.append(outcome)
            # Hold nothing of the job while idle: a result (or a traceback's frames)
            # kept here would keep its connection, even its pool, alive.
            del job, event, fn, args, outcome
            # The reader clears the flag before draining: seen set, a drain is still to
            # come and will find this outcome. (Two threads both writing is harmless.)
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    write(write_end, b"x")
                except OSError:  # the reader is gone: closed, nobody waits any more
                    pass
        with self._exit_lock:
            self._running -= 1
            last = self._running == 0
        if last:  # every other writer has stopped: the write end is this thread's alone
            os = self._os
            try:
                os.write(write_end, b"x")  # wake the reader, which then closes its end
            except OSError:  # the reader is gone already
                pass
            os.close(write_end)

    def _deliver(self, read_end: int) -> None:
        """Hand the results over (called by the hub when the pipe is readable)."""
        try:
            self._os.read(read_end, 4096)
        except BlockingIOError:
            pass
        self._wake_pending = False
        done = self._done
        while done:
            event, ok, value = done.popleft()
            event.send((ok, value))
        if self._closed:
            self._hub.remove(self._listener)
            self._os.close(read_end)

    def close(self) -> None:
        """Let the threads exit once their jobs are done, then the reader.

        The last thread to exit wakes the reader (and closes the write end): nothing is
        written here, where the write end may already be closed.
        """
        self._closed = True
        if self._jobs is None:
            return
        for _ in range(self._size):
            self._jobs.put(None)


BACKENDS: dict[str, type[Backend]] = {
    "threads": Backend,
    "gevent": GeventBackend,
    "eventlet": EventletBackend,
}


def detect_backend() -> str:
    """Name the backend that matches how ``threading`` is patched right now."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        return "gevent"
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread"):
        return "eventlet"
    return "threads"


def get_backend(name: str, pool_name: str) -> Backend:
    """Return the backend called ``name`` (``"auto"``: detected), checking it is usable."""
    if name == "auto":
        name = detect_backend()
    cls = BACKENDS.get(name)
    if cls is None:
        raise ValueError(
            f"pool {pool_name!r}: backend must be 'auto', {', '.join(map(repr, BACKENDS))}, "
            f"got {name!r}"
        )
    if cls.green:
        try:
            __import__(name)
        except ImportError as exc:
            raise ImportError(
                f"pool {pool_name!r}: backend {name!r} needs {name} installed "
                f"(pip install 'dbapi-pool[{name}]')"
            ) from exc
    return cls()


def cooperates(backend: Backend, test: Callable[[str, bool], bool] | None) -> bool:
    """Tell whether a driver (its profile's ``cooperates`` test) yields to the green hub."""
    return backend.green and bool(
        test is not None and test(backend.name, backend.sockets_patched())
    )


def choose_offload(
    backend: Backend,
    choice: bool | str,
    test: Callable[[str, bool], bool] | None,
    size: int,
    pool_name: str,
) -> Callable[..., Any] | None:
    """Return where driver calls run: ``None`` (in the caller) or an OS thread pool of
    ``size`` threads (``choice``: ``"auto"`` offloads a driver that blocks the hub)."""
    if choice not in (True, False, "auto"):
        raise ValueError(
            f"pool {pool_name!r}: offload must be True, False or 'auto', got {choice!r}"
        )
    if not backend.green:
        if choice is True:
            raise ValueError(
                f"pool {pool_name!r}: offload=True needs a green backend (gevent or "
                "eventlet); with OS threads every driver call already runs in its "
                "caller's thread"
            )
        return None
    if choice == "auto":
        choice = not cooperates(backend, test)
    return backend.offloader(size) if choice else None
