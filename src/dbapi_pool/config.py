"""Validated, frozen pool settings.

Bad values raise ``ValueError`` (or ``TypeError`` for a wrong type) naming the setting and
the pool; nothing is clamped silently. Every setting's default lives here, once: on the
fields of :class:`PoolConfig`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "SETTINGS",
    "ConnectArgs",
    "Hook",
    "PoolConfig",
    "ResetSpec",
    "call_timeout",
    "connect_keywords",
    "is_coroutine_function",
    "plain_callables",
    "plain_connect_args",
]

#: ``"rollback"`` (the default), ``None`` (no reset), or a callable taking the raw connection.
ResetSpec: TypeAlias = "str | Callable[[Any], object] | None"

#: A callable returning more ``connect()`` keywords, called for each new connection; for
#: ``AsyncConnectionPool`` only, it may be a coroutine function (awaited on the loop).
ConnectArgs: TypeAlias = "Callable[[], Mapping[str, Any] | Awaitable[Mapping[str, Any]]] | None"

#: ``configure`` and ``check``: a callable taking the raw connection (for
#: ``AsyncConnectionPool`` only, it may be a coroutine function taking an async connection).
Hook: TypeAlias = "Callable[[Any], object] | None"

RESET_NAMES = ("rollback", "full")


def _number(
    pool: str, setting: str, value: object, *, allow_none: bool, positive: bool = False
) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"pool {pool!r}: {setting} must be a number, not None")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"pool {pool!r}: {setting} must be a number, got {type(value).__name__}")
    if math.isnan(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"pool {pool!r}: {setting} must be {bound}, got {value!r}")
    return None if math.isinf(value) else float(value)


def _finite(pool: str, setting: str, value: object) -> float:
    number = _number(pool, setting, value, allow_none=False)
    if number is None:
        raise ValueError(f"pool {pool!r}: {setting} must be finite, got {value!r}")
    return number


def _count(pool: str, setting: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"pool {pool!r}: {setting} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"pool {pool!r}: {setting} must be >= {minimum}, got {value}")
    return value


def call_timeout(pool: str, value: object, default: float | None) -> float | None:
    """Validate a per-call ``timeout`` argument like the setting; ``None`` means ``default``.

    Returns the seconds to wait, or ``None`` for no limit (``math.inf``): a bare
    ``lock.acquire(True, math.inf)`` raises ``OverflowError``, and a negative wait used to
    be a silent ``PoolTimeout``.
    """
    if value is None:
        return default
    return _number(pool, "the timeout argument of get()", value, allow_none=False)


def is_coroutine_function(fn: object) -> bool:
    """Tell whether calling ``fn`` makes a coroutine (also an object with an async
    ``__call__``)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004  (an object with an async __call__)
    )


def connect_keywords(pool: str, extra: object) -> Mapping[str, Any]:
    """Check what ``connect_args`` returned: a mapping of ``connect()`` keywords."""
    if not isinstance(extra, Mapping):
        raise TypeError(
            f"pool {pool!r}: connect_args returned a {type(extra).__name__}, "
            "not a mapping of connect() keywords"
        )
    return extra


def plain_connect_args(pool: str, front_end: str, connect_args: object) -> None:
    """Refuse, at construction, a coroutine ``connect_args`` a front-end cannot await."""
    if is_coroutine_function(connect_args):
        raise TypeError(
            f"pool {pool!r}: connect_args is a coroutine function, which only "
            f"AsyncConnectionPool can await; give {front_end} a plain function returning "
            "the connect() keywords"
        )


def plain_callables(pool: str, front_end: str, config: PoolConfig) -> None:
    """Refuse, at construction, the coroutine functions a front-end cannot await
    (``connect_args``, ``configure``, ``check``)."""
    plain_connect_args(pool, front_end, config.connect_args)
    for setting in HOOKS:
        if is_coroutine_function(getattr(config, setting)):
            raise TypeError(
                f"pool {pool!r}: {setting} is a coroutine function, which only "
                f"AsyncConnectionPool can await; give {front_end} a plain function taking "
                "the driver's connection"
            )


def _reset(pool: str, setting: str, value: object) -> object:
    if not (value is None or callable(value) or value in RESET_NAMES):
        raise ValueError(
            f"pool {pool!r}: reset must be one of {RESET_NAMES}, None or a callable, got {value!r}"
        )
    return value


def _flag(pool: str, setting: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"pool {pool!r}: {setting} must be True or False, got {value!r}")
    return value


def _listeners(pool: str, setting: str, value: object) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(
            f"pool {pool!r}: {setting} must be a list of listener objects, "
            f"got {type(value).__name__}"
        )
    return tuple(value)


#: The lifecycle hooks, and when each runs.
HOOKS = {
    "configure": "on each new connection before it is first lent",
    "check": "on each checkout of an idle connection",
}
#: What each callable setting must be (for the error naming a bad one).
CALLABLES = {
    "connect_args": "a callable returning connect() keywords (called for each new connection)",
    **{
        hook: f"None or a callable taking the connection (run {when})"
        for hook, when in HOOKS.items()
    },
}


def _callable(pool: str, setting: str, value: object) -> object:
    if value is not None and not callable(value):
        raise TypeError(
            f"pool {pool!r}: {setting} must be {CALLABLES[setting]}, got {type(value).__name__}"
        )
    return value


def _optional(check: Callable[..., Any]) -> Callable[[str, str, object], Any]:
    return lambda pool, setting, value: None if value is None else check(pool, setting, value)


def _no_limit(pool: str, setting: str, value: object) -> float | None:
    return _number(pool, setting, value, allow_none=True)


#: Each setting's validator: ``(pool, setting, value) -> value to keep``.
_VALIDATORS: dict[str, Callable[[str, str, object], Any]] = {
    "min_size": lambda pool, setting, value: _count(pool, setting, value, minimum=0),
    "max_size": lambda pool, setting, value: _count(pool, setting, value, minimum=1),
    "max_idle": _no_limit,
    "max_age": _no_limit,
    "connect_timeout": lambda pool, setting, value: _number(
        pool, setting, value, allow_none=True, positive=True
    ),
    "timeout": _no_limit,
    "max_waiting": _optional(lambda pool, setting, value: _count(pool, setting, value, minimum=0)),
    "reset": _reset,
    "check_idle_after": _no_limit,
    "pre_ping": _flag,
    "max_connecting": lambda pool, setting, value: _count(pool, setting, value, minimum=1),
    "reconnect_min": _finite,
    "reconnect_max": _finite,
    "leak_timeout": _no_limit,
    "connect_args": _callable,
    "handoff_after": _finite,
    "keepalive": lambda pool, setting, value: _number(
        pool, setting, value, allow_none=True, positive=True
    ),
    "listeners": _listeners,
    "configure": _callable,
    "check": _callable,
}

#: The names of the pool settings (with ``name``): every other keyword goes to the driver.
SETTINGS = frozenset(_VALIDATORS) | {"name"}


@dataclass(frozen=True)
class PoolConfig:
    """Settings shared by every pool flavour; build it with :meth:`build`.

    Times are in seconds. ``None`` (or ``math.inf``) means "no limit" for ``max_idle``,
    ``max_age``, ``connect_timeout``, ``timeout`` and ``max_waiting``. The defaults below
    are the pool's, for every flavour (the only place they are written).
    """

    name: str
    min_size: int = 0
    max_size: int = 4
    #: 10 min idle, 30 min lived (HikariCP's idleTimeout and maxLifetime; psycopg_pool:
    #: 10 min and 1 h): a web worker's connections are not replaced every half minute.
    #: The eventlet drop-in keeps eventlet's own 10 s and 30 s.
    max_idle: float | None = 600.0
    max_age: float | None = 1800.0
    connect_timeout: float | None = 5.0
    timeout: float | None = 30.0
    max_waiting: int | None = None
    reset: ResetSpec = "rollback"
    #: Ping a connection idle longer than this before handing it out, when the driver
    #: offers no near-free socket probe (HikariCP's 500 ms bypass window).
    check_idle_after: float | None = 0.5
    #: Ping every connection before handing it out.
    pre_ping: bool = False
    #: How many connects may run at once (a restarted database is not stormed).
    max_connecting: int = 3
    #: Bounds of the exponential backoff (full jitter) between connect attempts while the
    #: database is unreachable.
    reconnect_min: float = 0.1
    reconnect_max: float = 10.0
    #: Log a warning with the borrower's stack when a checkout lasts longer than this.
    leak_timeout: float | None = None
    #: How long a waiter may be passed over: a connection returned while the oldest waiter
    #: has waited less goes back to the idle stack (a running thread may take it again);
    #: after that, every returned connection goes straight to the oldest waiter. 0 is
    #: strict first come, first served. (Go's sync.Mutex starvation mode, with 1 ms.)
    #: ``None`` given to a pool means the front-end's own default.
    handoff_after: float = 0.0
    #: Each connection's ``max_age`` is shortened by a random fraction up to this, so that
    #: connections opened together do not all expire together (psycopg_pool uses 5 %).
    age_jitter: float = 0.05
    #: A callable returning more ``connect()`` keywords for each new connection (rotating
    #: credentials). Last, so that the fields before it keep their positions.
    connect_args: ConnectArgs = None
    #: Ping idle connections neither used nor pinged for this long, so that a NAT or proxy
    #: that dropped them silently is found before a caller is (``None``: off).
    keepalive: float | None = None
    #: Objects told of the pool's events (see :mod:`dbapi_pool.listeners`); more can be
    #: added with ``add_listener()``.
    listeners: tuple[Any, ...] = ()
    #: Run on each new driver connection before it is first lent (``SET TIME ZONE``...);
    #: if it raises, the connection is closed and the connect counts as failed.
    configure: Hook = None
    #: Run on each checkout of an idle connection instead of the ping; a connection it
    #: rejects (returns ``False`` or raises) is closed and replaced.
    check: Hook = None

    @classmethod
    def build(cls, name: str, **settings: Any) -> PoolConfig:
        """Validate the given settings and return the frozen configuration.

        Settings not given take the field's default; an unknown one is a ``TypeError``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"pool name must be a non-empty string, got {name!r}")
        unknown = sorted(set(settings) - set(_VALIDATORS))
        if unknown:
            raise TypeError(f"pool {name!r}: unknown settings: {', '.join(unknown)}")
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        values = {
            setting: check(name, setting, settings.get(setting, defaults[setting]))
            for setting, check in _VALIDATORS.items()
        }
        _check_pairs(name, values)
        return cls(name=name, **values)

    def replace(self, **changes: Any) -> PoolConfig:
        """Return a copy with some settings changed, validated like the originals."""
        current = {setting: getattr(self, setting) for setting in _VALIDATORS}
        built = type(self).build(self.name, **{**current, **changes})
        return dataclasses.replace(built, age_jitter=self.age_jitter)

    @property
    def close_on_return(self) -> bool:
        """Tell whether every connection is closed when it comes back (the classic 0 values)."""
        return self.max_idle == 0 or self.max_age == 0


def _check_pairs(name: str, values: Mapping[str, Any]) -> None:
    """Refuse settings that are each valid but contradict each other."""
    if values["min_size"] > values["max_size"]:
        raise ValueError(
            f"pool {name!r}: min_size ({values['min_size']}) must not exceed "
            f"max_size ({values['max_size']})"
        )
    if values["reconnect_max"] < values["reconnect_min"]:
        raise ValueError(
            f"pool {name!r}: reconnect_max ({values['reconnect_max']}) must not be below "
            f"reconnect_min ({values['reconnect_min']})"
        )
