"""PoolBase: what every pool front-end shares (settings, driver profile, core, surface).

The front-ends differ only in how they wait and where driver calls run; everything else,
from validating settings to ``repr``, lives here once.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from . import _fork
from ._closing import CONFIRMED_REASONS, WaitReadable, close_connections
from ._core import Entry, Holder, Plan, PoolState, PoolStats
from ._core.holders import WRAPPERS
from ._drivers import SECRET_KWARGS, DriverProfile, module_name, profile_for
from ._drivers.keywords import check_connect_kwargs
from ._policy import DriverPolicy
from .config import SETTINGS, PoolConfig, connect_keywords, plain_callables
from .errors import ForeignConnection
from .holders import checkout_tag
from .listeners import Listeners
from .proxy import Released
from .url import parse_url

__all__ = ["PoolBase", "check_module"]

logger = logging.getLogger("dbapi_pool")
_monotonic = time.monotonic

_Pool = TypeVar("_Pool", bound="PoolBase")
_T = TypeVar("_T")

#: Frames of the borrower's stack kept per checkout when ``leak_timeout`` is set.
LEAK_STACK_DEPTH = 16
#: Close reasons that mean the connection was found unusable (``on_invalidate``).
INVALID_REASONS = frozenset({"broken", "failed_check", "reset_failed", "cancelled"})


def check_module(module: Any, pool_name: str) -> None:
    """Refuse what is not a usable DB-API 2.0 module, with a clear error."""
    if not callable(getattr(module, "connect", None)):
        raise TypeError(
            f"pool {pool_name!r}: {module!r} is not a DB-API 2.0 module (it has no connect())"
        )
    if getattr(module, "threadsafety", 1) == 0:
        raise ValueError(
            f"pool {pool_name!r}: {module_name(module)} declares threadsafety = 0 (its "
            "connections may not be shared between threads), so it cannot be pooled"
        )


class PoolBase:
    """Hold a pool's settings, driver profile, core state and lock.

    ``module`` is the driver module (``psycopg2``, ``MySQLdb``, ``sqlite3``...); ``*args``
    and the keywords that are not pool settings go to ``module.connect()`` (one it cannot
    take is refused here). Settings (defaults: :class:`~dbapi_pool.PoolConfig`'s fields; in
    seconds; ``None`` means no limit):

    - ``min_size`` connections are opened at once and kept open;
    - ``max_size`` bounds the connections open or opening; further callers wait;
    - ``max_idle``: an idle connection is closed after that long unused (``0``: every
      connection is closed when returned);
    - ``max_age``: a connection older than that (less a random 0-5 %) is closed when
      returned or found idle (``0``: closed when returned);
    - ``connect_timeout``: ``get()`` raises ``ConnectTimeout`` if connecting takes longer;
    - ``timeout``: how long ``get()`` waits for a connection before ``PoolTimeout``;
    - ``max_waiting``: how many callers may wait at once (``TooManyWaiters`` beyond);
    - ``reset``: ``"rollback"``, ``"full"``, ``None``, or a callable run on the driver
      connection when it is returned; if it raises, the connection is closed;
    - ``name``: shown in messages, logs and ``repr`` (default: driver, host and database);
    - ``check_idle_after``: a connection idle longer than that is pinged before it is
      handed out, when the driver has no near-free socket probe (with one, every
      checkout is probed); ``None``: no check; ``pre_ping=True`` pings every checkout;
      a connection that fails its check is replaced within the same ``get()``;
    - ``max_connecting``: how many connects may run at once;
    - ``reconnect_min``, ``reconnect_max``: the backoff bounds while the database is
      unreachable (callers then fail fast with the driver's last connect error);
    - ``leak_timeout``: warn, with the borrower's stack, about checkouts held longer;
    - ``connect_args``: a callable returning more ``connect()`` keywords, called for each
      new connection (rotating credentials, say); a coroutine function only for
      ``AsyncConnectionPool`` (the others refuse one with ``TypeError``);
    - ``handoff_after``: how long a waiter may be passed over by a running caller before
      returned connections go straight to it (default: the front-end's; 0 means strict
      first come, first served);
    - ``keepalive``: ping idle connections unused for that long (off by default), so that
      a NAT or proxy that dropped them silently is found before a caller is;
    - ``configure``: a callable run on each new driver connection before it is first lent
      (``SET search_path``, adapters...); what it leaves in a transaction is committed; if
      it raises, the connection is closed and the connect counts as failed (the caller of
      ``get()`` gets its error);
    - ``check``: a callable run on each checkout of an idle connection, in addition to
      the driver's "closed" flag, instead of the ping (and of the socket probe, which
      only decides whether to ping); it passes unless it returns ``False`` or raises; a
      connection it rejects is closed (reason ``"failed_check"``) and replaced within
      the same ``get()``; a transaction it leaves open is rolled back. A new connection
      is not checked. ``AsyncConnectionPool`` also takes coroutine functions for both
      (awaited on the loop with an async connection, as ``get()`` lends; the others
      refuse one with ``TypeError``).
    - ``listeners``: objects told of the pool's events (see
      :class:`~dbapi_pool.listeners.PoolListener`); more with ``add_listener()``.
    """

    def __init__(self, module: Any, *args: Any, **kwargs: Any) -> None:
        # The settings' defaults live on PoolConfig's fields; what is not a setting goes
        # to the driver, checked now (a misspelt setting fails here, not at checkout).
        settings = {key: kwargs.pop(key) for key in SETTINGS & kwargs.keys()}
        profile = profile_for(module)
        name = settings.pop("name", None)
        name = name if name is not None else profile.describe(kwargs)
        check_module(module, name)
        if "handoff_after" in settings and settings["handoff_after"] is None:
            del settings["handoff_after"]  # the front-end's default, or the field's
        self._config = config = PoolConfig.build(name, **settings)
        check_connect_kwargs(module, profile, kwargs, name, SETTINGS)
        self.name = name
        self.module = module
        self.profile: DriverProfile = profile
        self._args = args
        self._user_kwargs = kwargs
        self._kwargs = profile.connect_kwargs(kwargs, config.connect_timeout)
        self._connect_fn = partial(module.connect, *args, **self._kwargs)
        self._connect_args = config.connect_args
        if not self._awaits_connect_args:
            plain_callables(name, type(self).__name__, config)
        #: Secret connect values, blanked out of logged driver errors.
        self._secrets = [str(v) for k, v in kwargs.items() if k in SECRET_KWARGS and v]
        #: What to ask of the driver's connections (reset, commit, ping, broken).
        self._policy = DriverPolicy(profile, config)
        self._state = self._new_state()
        # Green once threading is monkey-patched, and it must be: the pool never switches
        # green threads under it, but a garbage collection run there may call a finalizer
        # that does (green I/O in a __del__), and another green thread then blocking on an
        # OS lock would freeze the whole hub (tests/green/finalizer_switch.py).
        self._lock = threading.Lock()
        self._released = Released(name)
        #: The listeners' methods by event (``self._events.checkout`` is a tuple, empty
        #: unless someone listens: the only cost of an event then).
        self._events = Listeners(name, config.listeners)
        #: Entries of proxies collected without put(), handed over lock-free by __del__.
        self._abandoned: deque[Entry] = deque()
        self._setup()
        _fork.track(self)

    #: Whether the front-end awaits a coroutine function given as ``connect_args``,
    #: ``configure`` or ``check`` (only the asyncio one: elsewhere its call would return a
    #: coroutine nobody awaits).
    _awaits_connect_args = False

    def _new_state(self) -> PoolState:
        """Make the core, telling it which connect errors are refused logins."""
        state = PoolState(self._config)
        state.health.is_auth_error = self.profile.is_auth_error
        return state

    #: Carry out, outside the lock, the I/O the core planned: each front-end its own way.
    _carry_out: Callable[[Plan], Any]

    def _run_core(self, op: Callable[..., _T], *args: Any) -> _T:
        """Run one core operation under the lock, then carry out its plan after it."""
        with self._lock:
            result = op(*args)
            plan = self._state.take_plan()
        if plan is not None:
            self._carry_out(plan)
        return result

    def _setup(self) -> None:
        """Finish the construction in the front-end (called last by ``__init__``)."""

    @classmethod
    def from_url(cls: type[_Pool], url: str, **settings: Any) -> _Pool:
        """Create a pool from a SQLAlchemy-style URL (``postgresql+psycopg2://u:p@h/db``).

        Keywords are pool settings, or further ``connect()`` keywords for the driver.
        """
        parsed = parse_url(url)
        return cls(parsed.import_driver(), **{**parsed.kwargs, **settings})

    def _restart_in_child(self) -> None:
        """Empty the pool in a forked child; never use or close the parent's connections.

        The idle ones are disowned now, those the child still holds when they come back
        (``put()`` then only detaches them): see ``_fork.py``.
        """
        for entry in self._state.idle:
            _fork.disown(entry.conn, self.profile.fileno)
        self._state = self._new_state()
        self._lock = threading.Lock()
        self._abandoned = deque()
        self._forked()
        logger.info("pool %r: started empty in forked child process %d", self.name, os.getpid())

    def _forked(self) -> None:
        """Drop the front-end's threads and workers after a fork (they did not survive)."""

    def _inherited(self, entry: Entry) -> bool:
        """Tell (and handle) a connection checked out before this process was forked."""
        if entry.owner is self._state:
            return False
        _fork.disown(entry.conn, self.profile.fileno)
        return True

    def _abandon(self, entry: Entry) -> None:
        """Take a connection whose proxy was collected without put() (lock-free: the
        collector may run while this thread holds the pool's lock)."""
        if self._inherited(entry):  # the parent's, across a fork
            return
        self._abandoned.append(entry)

    def _maintain(self) -> float | None:
        """Expire idle connections, refill to min_size, report leaks; return the seconds
        to the next run (``None``: no deadline is known)."""
        if self._abandoned:
            self._collect_abandoned()
        with self._lock:
            now = _monotonic()
            deadline = self._state.maintain(now)
            leaks = self._state.leaks(now)
            plan = self._state.take_plan()
        self._report_leaks(leaks, now)
        if plan is not None:
            self._carry_out(plan)
        return None if deadline is None else max(0.001, deadline - _monotonic())

    def _collect_abandoned(self) -> None:
        plan = self._abandoned_plan()
        if plan is not None:
            self._carry_out(plan)

    def _abandoned_plan(self) -> Plan | None:
        """Retire the abandoned connections; return the plan that closes them."""
        lost = 0
        with self._lock:
            while self._abandoned:
                self._state.abandon(self._abandoned.popleft())
                lost += 1
            plan = self._state.take_plan()
        for _ in range(lost):
            logger.warning(
                "pool %r: a connection was garbage-collected without put(); closing it",
                self.name,
            )
        return plan

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking driver call (a green pool runs it in an OS thread instead).

        What runs this way touches only the driver: no logging, no pool lock (a patched
        lock taken from a foreign OS thread can hang the hub).
        """
        return fn(*args)

    def _connect_driver(self) -> Any:
        """Open one driver connection (blocking), with the pool's connect arguments."""
        connect = self._connect_fn
        if self._connect_args is not None:
            # Evaluated here, in the caller's thread: offloaded code touches only the driver.
            extra = connect_keywords(self.name, self._connect_args())
            kwargs = {**self._user_kwargs, **extra}
            kwargs = self.profile.connect_kwargs(kwargs, self._config.connect_timeout)
            connect = partial(self.module.connect, *self._args, **kwargs)
        return self._call(connect)

    def _connect_done(
        self,
        error: BaseException | None,
        failures_before: int,
        conn: Any = None,
        seconds: float = 0.0,
    ) -> None:
        """Log a connect's outcome and tell the listeners (outside the lock)."""
        self._log_connect(error, failures_before)
        events = self._events
        if error is not None:
            if events.connect_failed:
                events.emit("connect_failed", self, error)
        elif events.connect:
            events.emit("connect", self, conn, seconds)

    def _new_connection(self) -> Any:
        """Open one driver connection for the pool and run ``configure`` on it (blocking).

        ``configure`` runs where the driver's calls run (``_call``: an OS thread for an
        offloaded green pool); if it fails, the connection is closed there and the error
        raised, so the caller handles it as a failed connect.
        """
        conn = self._connect_driver()
        if self._policy.configure_hook is not None:
            self._call(self._policy.configure_new, conn)
        return conn

    def _log_connect(self, error: BaseException | None, failures_before: int) -> None:
        """Log a connect's outcome as an operator needs it (``failures_before``: the
        failed connects in a row before this one, read under the lock).

        The first failure of a streak at WARNING, with the driver's error (the later ones
        at DEBUG: the backoff paces them, and one line per attempt would flood the log
        during an outage); the first success after failures at INFO.
        """
        if error is None:
            if failures_before:
                logger.info(
                    "pool %r: connected again after %d failed connects",
                    self.name,
                    failures_before,
                )
            else:
                logger.debug("pool %r: connected", self.name)
            return
        level = logging.DEBUG if failures_before else logging.WARNING
        if not logger.isEnabledFor(level):
            return
        refused = self._state.health.refusal(error)
        logger.log(
            level,
            "pool %r: %s (%s: %s)",
            self.name,
            "the database refused the credentials" if refused else "could not connect",
            type(error).__name__,
            self._scrub(str(error).strip()),
        )

    def _scrub(self, text: str) -> str:
        """Blank out the secrets given to connect() (a driver may echo its DSN)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _close_quietly(self, conn: Any, reason: str) -> None:
        """Close a driver connection (blocking); log, never raise, a failure."""
        self._close_many([(conn, reason)])

    # -- closes confirmed on the server (issue 11, defect 1; see _closing.py) --------------

    #: How a close confirmed on the server waits for its socket: ``None`` blocks the OS
    #: thread (threads, and every close run in an OS thread); a green pool calling the
    #: driver directly sets a cooperative wait.
    _server_wait: WaitReadable | None = None

    def _close_many(self, items: list[tuple[Any, str]]) -> None:
        """Close driver connections, each with its reason; log, never raise, a failure.

        Closes an operation asked for (``close()``, ``clear()``, ``drain()``,
        ``resize()``) return only once the server ended the sessions (bounded), where the
        driver exposes its socket.
        """
        confirm = any(reason in CONFIRMED_REASONS for _, reason in items)
        conns = [conn for conn, _ in items]
        fileno = self.profile.fileno
        errors = self._call(close_connections, conns, fileno, confirm, self._server_wait)
        if self._events and self._close_events_here:
            self._emit_closes(items)
        for (_, reason), exc in zip(items, errors, strict=True):
            if exc is None:
                if reason == "broken":  # killed by the server, or failed with a "dead" error
                    logger.warning(
                        "pool %r: a connection came back broken (the driver reported it "
                        "dead); closed it",
                        self.name,
                    )
                else:
                    logger.debug("pool %r: closed a connection (%s)", self.name, reason)
                continue
            logger.warning(
                "pool %r: closing a connection (%s) failed: %s: %s",
                self.name,
                reason,
                type(exc).__name__,
                exc,
            )

    #: Whether ``_close_many`` tells the listeners (the asyncio pool tells them on the loop
    #: instead: its closes run in the connections' threads).
    _close_events_here = True

    def _emit_closes(self, items: list[tuple[Any, str]]) -> None:
        """Tell the listeners of closes: ``on_invalidate`` first for a connection found
        unusable, then ``on_close``."""
        events = self._events
        for conn, reason in items:
            if reason in INVALID_REASONS and events.invalidate:
                events.emit("invalidate", self, conn, reason)
            if events.close:
                events.emit("close", self, conn, reason)

    def _check_failed(self, exc: BaseException) -> None:
        logger.warning(
            "pool %r: a connection failed its check before checkout (%s: %s); replacing it",
            self.name,
            type(exc).__name__,
            exc,
        )

    def add_listener(self, listener: Any) -> None:
        """Tell ``listener`` of this pool's events from now on (see
        :class:`~dbapi_pool.listeners.PoolListener` for the methods it may implement)."""
        self._events.add(listener)

    def remove_listener(self, listener: Any) -> None:
        """Stop telling ``listener`` of this pool's events."""
        self._events.remove(listener)

    def _timed_out(self, start: float) -> None:
        """Tell the listeners of a get() that gave up (started at ``start``)."""
        if self._events.timeout:
            self._events.emit("timeout", self, _monotonic() - start)

    #: Who is holding a connection: the current thread's ident (a green pool: greenlet).
    _holder_id: Callable[[], Any] = staticmethod(threading.get_ident)

    def _note_holder(self, entry: Entry, tag: str | None, depth: int) -> None:
        """Note who checked ``entry`` out, from the frame ``depth`` levels up, with which
        tag (the inline copy in ``ConnectionPool.get()`` is the hot path's)."""
        entry.holder = self._holder_id()
        try:
            caller: Any = sys._getframe(depth)
        except ValueError:  # get() was a thread's or task's own function: no caller
            caller = None
        while caller is not None and id(caller.f_code) in WRAPPERS:
            caller = caller.f_back
        if caller is None:
            entry.site = None
        else:
            entry.site = caller.f_code
            entry.lasti = caller.f_lasti
        entry.tag = checkout_tag.get() if tag is None else tag

    def holders(self) -> list[Holder]:
        """Return who holds the pool's connections, the longest held first: for each,
        how long, the thread (or task) name, the ``file:line in function`` that called
        ``get()``, and its tag (a snapshot)."""
        with self._lock:
            return self._state.holders(_monotonic())

    def _record_borrower(self, entry: Entry) -> None:
        """Keep where a connection was checked out, to name the borrower of a leak."""
        entry.borrower = traceback.format_stack(limit=LEAK_STACK_DEPTH)[:-2]

    def _report_leaks(self, leaks: list[Entry], now: float) -> None:
        for entry in leaks:
            stack = "".join(entry.borrower or ["(stack not recorded)\n"])
            logger.warning(
                "pool %r: a connection has been checked out for %.1f s (leak_timeout=%g s); "
                "borrowed at:\n%s",
                self.name,
                now - entry.checked_out_at,
                self._config.leak_timeout,
                stack,
            )

    def _reset_failed(self, exc: BaseException) -> str:
        logger.warning(
            "pool %r: reset failed (%s: %s); closing the connection",
            self.name,
            type(exc).__name__,
            exc,
        )
        return "reset_failed"

    def _foreign(self, conn: object) -> ForeignConnection:
        pool = getattr(conn, "_pool", None)
        if isinstance(pool, PoolBase):
            what = f"a connection of pool {pool.name!r}"
        else:
            what = f"a {type(conn).__module__}.{type(conn).__qualname__} object"
        return ForeignConnection(
            f"pool {self.name!r}: put() got {what}, which this pool did not hand out"
        )

    @property
    def closed(self) -> bool:
        """Tell whether the pool was closed."""
        return self._state.closed

    @property
    def config(self) -> PoolConfig:
        """Return the validated settings."""
        return self._config

    def stats(self) -> PoolStats:
        """Return a frozen snapshot of the sizes and counters."""
        with self._lock:
            return self._state.snapshot()

    def __repr__(self) -> str:
        state = self._state
        closed = " closed" if state.closed else ""
        return f"<{type(self).__name__} {self.name!r}{closed} {state.counts()}>"
