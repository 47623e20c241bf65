"""Pool listeners: be told what a pool does, as it does it.

``pool.add_listener(obj)`` (or the ``listeners=[...]`` setting) registers an object that
implements any subset of the methods of :class:`PoolListener`; subclassing it is optional.
Listeners run outside the pool's lock, in the thread (or green thread, or on the event
loop) where the event happened. One that raises is logged once per listener, event and
error type, and never breaks the pool or its caller. With no listener, an event costs one
attribute test.
"""

from __future__ import annotations

import difflib
import logging
import threading
import warnings
from typing import Any

__all__ = ["EVENTS", "Listeners", "PoolListener"]

logger = logging.getLogger("dbapi_pool")


class PoolListener:
    """The events a listener may implement (every one optional; ``conn`` is the driver's
    raw connection, times are in seconds)."""

    def on_connect(self, pool: Any, conn: Any, seconds: float) -> None:
        """A new connection was opened (and ``configure`` ran on it) in ``seconds``."""

    def on_connect_failed(self, pool: Any, error: BaseException) -> None:
        """A connect (or ``configure``) failed with ``error``."""

    def on_checkout(self, pool: Any, conn: Any, waited: float) -> None:
        """``conn`` was lent to a caller that waited ``waited`` for it (0: at once)."""

    def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
        """``conn`` came back after ``held``; it is reset (or closed) by now."""

    def on_reset(self, pool: Any, conn: Any) -> None:
        """The pool reset ``conn`` (rolled back, or the ``reset`` callable) on its return."""

    def on_close(self, pool: Any, conn: Any, reason: str) -> None:
        """The pool closed ``conn``; ``reason`` is one of ``CLOSE_REASONS`` (``max_idle``,
        ``broken``, ``pool_closed``...)."""

    def on_wait(self, pool: Any) -> None:
        """A caller found no connection and started to wait in line."""

    def on_timeout(self, pool: Any, waited: float) -> None:
        """A caller gave up after ``waited`` (it gets ``PoolTimeout``)."""

    def on_invalidate(self, pool: Any, conn: Any, reason: str) -> None:
        """``conn`` was found unusable (``broken``, ``failed_check``, ``reset_failed``)
        and is being closed; ``on_close`` follows."""


#: The event method names, without their ``on_`` prefix.
EVENTS = tuple(name[3:] for name in vars(PoolListener) if name.startswith("on_"))


class Listeners:
    """Hold a pool's listeners as one tuple of bound methods per event (copy on write:
    emitting never takes a lock)."""

    __slots__ = (*EVENTS, "_listeners", "_lock", "_owners", "_pool_name", "_reported")

    # One tuple of bound methods per event (the names of EVENTS).
    connect: tuple[Any, ...]
    connect_failed: tuple[Any, ...]
    checkout: tuple[Any, ...]
    checkin: tuple[Any, ...]
    reset: tuple[Any, ...]
    close: tuple[Any, ...]
    wait: tuple[Any, ...]
    timeout: tuple[Any, ...]
    invalidate: tuple[Any, ...]

    def __init__(self, pool_name: str, listeners: tuple[Any, ...] = ()) -> None:
        self._pool_name = pool_name
        self._listeners: tuple[Any, ...] = ()
        #: Each registered method's listener, by the method's id (for remove and logs).
        self._owners: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._reported: set[tuple[int, str, type]] = set()
        for event in EVENTS:
            setattr(self, event, ())
        for listener in listeners:
            self.add(listener)

    def add(self, listener: Any) -> None:
        """Register ``listener`` (again: no effect); warn about misspelt ``on_`` methods."""
        methods = _methods_of(listener, self._pool_name)
        with self._lock:
            if any(known is listener for known in self._listeners):
                return
            self._listeners += (listener,)
            for event, method in methods.items():
                self._owners[id(method)] = listener
                setattr(self, event, (*getattr(self, event), method))

    def remove(self, listener: Any) -> None:
        """Unregister ``listener``; ``ValueError`` if it was not registered."""
        with self._lock:
            if not any(known is listener for known in self._listeners):
                raise ValueError(
                    f"pool {self._pool_name!r}: {listener!r} is not one of its listeners"
                )
            self._listeners = tuple(k for k in self._listeners if k is not listener)
            for event in EVENTS:
                methods = getattr(self, event)
                kept = tuple(m for m in methods if self._owners[id(m)] is not listener)
                setattr(self, event, kept)
                for method in methods:
                    if method not in kept:
                        del self._owners[id(method)]

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def __iter__(self) -> Any:
        return iter(self._listeners)

    def emit(self, event: str, *args: Any) -> None:
        """Call every listener of ``event``; log (once per listener, event and error
        type), never raise, what one raises."""
        for method in getattr(self, event):
            try:
                method(*args)
            except Exception as exc:
                self._failed(self._owners.get(id(method), method), event, exc)

    def _failed(self, listener: Any, event: str, exc: Exception) -> None:
        key = (id(listener), event, type(exc))
        if key in self._reported:
            return
        self._reported.add(key)
        logger.error(
            "pool %r: listener %r failed in on_%s (%s: %s); further %s errors of this "
            "listener there are not logged",
            self._pool_name,
            listener,
            event,
            type(exc).__name__,
            exc,
            type(exc).__name__,
        )


def _methods_of(listener: Any, pool_name: str) -> dict[str, Any]:
    """Return the listener's event methods by event; warn about ``on_`` names that are
    not events (a misspelling would otherwise be silently never called)."""
    if isinstance(listener, type):
        raise TypeError(
            f"pool {pool_name!r}: a listener must be an instance, got the class "
            f"{listener.__name__} (did you mean {listener.__name__}()?)"
        )
    known = {f"on_{event}" for event in EVENTS}
    for name in dir(listener):
        if name.startswith("on_") and name not in known and callable(getattr(listener, name)):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.warn(
                f"pool {pool_name!r}: listener {listener!r} has {name}(), which is not a "
                f"pool event and will never be called{hint}",
                UserWarning,
                stacklevel=4,
            )
    methods = {}
    for event in EVENTS:
        method = getattr(listener, f"on_{event}", None)
        if method is None:
            continue
        if not callable(method):
            raise TypeError(f"pool {pool_name!r}: listener {listener!r}.on_{event} is not callable")
        if getattr(type(listener), f"on_{event}", None) is getattr(PoolListener, f"on_{event}"):
            continue  # PoolListener's own no-op: not worth a call
        methods[event] = method
    if not methods:
        raise TypeError(
            f"pool {pool_name!r}: {listener!r} implements no pool event (expected any of "
            f"{', '.join(sorted(known))})"
        )
    return methods
