"""The frozen statistics snapshot returned by ``pool.stats()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

from .timings import TimingStats

__all__ = ["CLOSE_REASONS", "Counts", "PoolStats"]

#: Why connections get closed; ``PoolStats.closes`` counts each.
CLOSE_REASONS = (
    "max_idle",  # idle longer than max_idle (the idle timer or a lazy check)
    "max_age",  # older than its (jittered) max_age
    "close_on_return",  # max_idle == 0 or max_age == 0: closed at every put()
    "reset_failed",  # the reset (rollback or the user's callable) raised
    "pool_closed",  # the pool was closed
    "late_connect",  # a connect finished after its caller's connect_timeout
    "abandoned",  # a checked-out connection was garbage-collected without put()
    "cancelled",  # its call was cancelled and the driver has no server-side cancel
    "broken",  # it failed with a "dead" error, or the driver reports it closed
    "failed_check",  # it failed the check before a checkout (probe or ping), or check()
    "drained",  # opened before the last drain(): replaced
    "resized",  # above a lowered max_size (resize())
    "cleared",  # an idle connection closed by clear() (the eventlet drop-in)
)


class Counts(dict[str, int]):
    """A read-only ``dict`` of counts (``PoolStats.closes``): a plain dict to
    ``json.dumps`` and ``dataclasses.asdict``, but not to be changed."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("a stats snapshot's counts are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only


def _empty_closes() -> Mapping[str, int]:
    return Counts(dict.fromkeys(CLOSE_REASONS, 0))


@dataclass(frozen=True)
class PoolStats:
    """Describe a pool at one instant: its sizes and its counters since it was created."""

    name: str
    max_size: int
    min_size: int
    #: Connections open or being opened (idle + in use + connecting + closing).
    size: int = 0
    idle: int = 0
    in_use: int = 0
    connecting: int = 0
    waiting: int = 0
    #: Connections handed to callers.
    checkouts: int = 0
    #: Checkouts that had to wait for a connection (including those that then timed out).
    waits: int = 0
    #: Checkouts that gave up after ``timeout``.
    timeouts: int = 0
    #: Callers refused at once because ``max_waiting`` callers already waited.
    refused: int = 0
    connects: int = 0
    connect_failures: int = 0
    connect_timeouts: int = 0
    #: Callers failed fast because connects were failing (the database is unreachable).
    unreachable: int = 0
    #: Checkouts held longer than ``leak_timeout`` (each reported once).
    leaks: int = 0
    closes: Mapping[str, int] = field(default_factory=_empty_closes)
    #: How long checkouts waited for a connection (0 for those served at once; includes
    #: the connect when one was opened for the caller; timed-out waits are not in it).
    wait_time: TimingStats = field(default_factory=TimingStats)
    #: How long callers held their connection, from checkout to return.
    use_time: TimingStats = field(default_factory=TimingStats)
    #: How long each successful connect (and ``configure``) took.
    create_time: TimingStats = field(default_factory=TimingStats)

    def as_dict(self) -> dict[str, Any]:
        """Return the snapshot as plain data for ``json.dumps``: every field, ``closes`` a
        dict, each timing a dict of its ``count``, ``sum``, ``counts`` per bucket and
        ``p50``/``p90``/``p99`` estimates (``bounds``: ``TimingStats.bounds``)."""
        data = asdict(self)
        data["closes"] = dict(self.closes)
        for name in ("wait_time", "use_time", "create_time"):
            timing: TimingStats = getattr(self, name)
            data[name] = {
                "count": timing.count,
                "sum": timing.sum,
                "counts": list(timing.counts),
                "p50": timing.p50,
                "p90": timing.p90,
                "p99": timing.p99,
            }
        return data

    @property
    def closed_total(self) -> int:
        """Return how many connections the pool has closed, whatever the cause."""
        return sum(self.closes.values())
