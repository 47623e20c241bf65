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

    The hub's own pool has ``maxsize`` 10, which capped 16 greenlets (measured), hence a
    pool of our own sized for ``max_size``.
    """

    name = "gevent"
    green = True

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
    """Wait on eventlet primitives; offload through eventlet's tpool (OS threads)."""

    name = "eventlet"
    green = True

    def new_signal(self) -> Signal:
        from eventlet.semaphore import Semaphore

        return Semaphore(0)  # type: ignore[no-any-return]

    def spawn(self, fn: Callable[..., Any], *args: Any, name: str) -> Joinable:
        import eventlet

        return _GreenThreadHandle(eventlet.spawn(fn, *args))

    def new_sleeper(self) -> Sleeper:
        return _SemaphoreSleeper()

    def offloader(self, size: int) -> Callable[..., Any]:
        from eventlet import tpool

        return tpool.execute  # type: ignore[no-any-return]

    def sockets_patched(self) -> bool:
        from eventlet import patcher

        return bool(patcher.is_monkey_patched("socket"))


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
