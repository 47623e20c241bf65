"""Validated, frozen pool settings.

Bad values raise ``ValueError`` (or ``TypeError`` for a wrong type) naming the setting and
the pool; nothing is clamped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from dataclasses import replace as dataclasses_replace
from typing import Any, TypeAlias

__all__ = ["PoolConfig", "ResetSpec"]

#: ``"rollback"`` (the default), ``None`` (no reset), or a callable taking the raw connection.
ResetSpec: TypeAlias = "str | Callable[[Any], object] | None"

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


@dataclass(frozen=True)
class PoolConfig:
    """Settings shared by every pool flavour; build it with :meth:`build`.

    Times are in seconds. ``None`` (or ``math.inf``) means "no limit" for ``max_idle``,
    ``max_age``, ``connect_timeout``, ``timeout`` and ``max_waiting``.
    """

    name: str
    min_size: int = 0
    max_size: int = 4
    max_idle: float | None = 10.0
    max_age: float | None = 30.0
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
    handoff_after: float = 0.0
    #: Ping idle connections neither used nor pinged for this long, so that a NAT or proxy
    #: that dropped them silently is found before a caller is (``None``: off).
    keepalive: float | None = None
    #: Each connection's ``max_age`` is shortened by a random fraction up to this, so that
    #: connections opened together do not all expire together (psycopg_pool uses 5 %).
    age_jitter: float = 0.05

    @classmethod
    def build(
        cls,
        name: str,
        *,
        min_size: int = 0,
        max_size: int = 4,
        max_idle: float | None = 10.0,
        max_age: float | None = 30.0,
        connect_timeout: float | None = 5.0,
        timeout: float | None = 30.0,
        max_waiting: int | None = None,
        reset: ResetSpec = "rollback",
        check_idle_after: float | None = 0.5,
        pre_ping: bool = False,
        max_connecting: int = 3,
        reconnect_min: float = 0.1,
        reconnect_max: float = 10.0,
        leak_timeout: float | None = None,
        handoff_after: float = 0.0,
        keepalive: float | None = None,
    ) -> PoolConfig:
        """Validate every setting and return the frozen configuration."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"pool name must be a non-empty string, got {name!r}")
        min_size = _count(name, "min_size", min_size, minimum=0)
        max_size = _count(name, "max_size", max_size, minimum=1)
        if min_size > max_size:
            raise ValueError(
                f"pool {name!r}: min_size ({min_size}) must not exceed max_size ({max_size})"
            )
        if max_waiting is not None:
            max_waiting = _count(name, "max_waiting", max_waiting, minimum=0)
        if not (reset is None or callable(reset) or reset in RESET_NAMES):
            raise ValueError(
                f"pool {name!r}: reset must be one of {RESET_NAMES}, None or a callable, "
                f"got {reset!r}"
            )
        if not isinstance(pre_ping, bool):
            raise TypeError(f"pool {name!r}: pre_ping must be True or False, got {pre_ping!r}")
        reconnect_min = _finite(name, "reconnect_min", reconnect_min)
        reconnect_max = _finite(name, "reconnect_max", reconnect_max)
        if reconnect_max < reconnect_min:
            raise ValueError(
                f"pool {name!r}: reconnect_max ({reconnect_max}) must not be below "
                f"reconnect_min ({reconnect_min})"
            )
        return cls(
            name=name,
            check_idle_after=_number(name, "check_idle_after", check_idle_after, allow_none=True),
            pre_ping=pre_ping,
            max_connecting=_count(name, "max_connecting", max_connecting, minimum=1),
            reconnect_min=reconnect_min,
            reconnect_max=reconnect_max,
            leak_timeout=_number(name, "leak_timeout", leak_timeout, allow_none=True),
            handoff_after=_finite(name, "handoff_after", handoff_after),
            min_size=min_size,
            max_size=max_size,
            max_idle=_number(name, "max_idle", max_idle, allow_none=True),
            max_age=_number(name, "max_age", max_age, allow_none=True),
            connect_timeout=_number(
                name, "connect_timeout", connect_timeout, allow_none=True, positive=True
            ),
            timeout=_number(name, "timeout", timeout, allow_none=True),
            max_waiting=max_waiting,
            reset=reset,
            keepalive=_number(name, "keepalive", keepalive, allow_none=True, positive=True),
        )

    def replace(self, **changes: Any) -> PoolConfig:
        """Return a copy with some settings changed, validated like the originals."""
        current = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        del current["name"], current["age_jitter"]
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise TypeError(f"pool {self.name!r}: unknown setting(s): {', '.join(unknown)}")
        built = type(self).build(self.name, **{**current, **changes})
        return dataclasses_replace(built, age_jitter=self.age_jitter)

    @property
    def close_on_return(self) -> bool:
        """Tell whether every connection is closed when it comes back (the classic 0 values)."""
        return self.max_idle == 0 or self.max_age == 0
