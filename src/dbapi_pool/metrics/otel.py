"""Export the pools' statistics as OpenTelemetry metrics (``pip install 'dbapi-pool[otel]'``).

``instrument(pool_or_connector, meter_provider=None)`` registers, once per meter provider,
the instruments of the semantic conventions for database client connection pools, each
data point labelled ``db.client.connection.pool.name`` with the pool's name:

* ``db.client.connection.count`` (ObservableUpDownCounter, ``{connection}``), with
  ``db.client.connection.state`` = ``idle`` or ``used``;
* ``db.client.connection.idle.max``, ``.idle.min``, ``.max`` (ObservableUpDownCounter,
  ``{connection}``) and ``.pending_requests`` (ObservableUpDownCounter, ``{request}``);
* ``db.client.connection.timeouts`` (ObservableCounter, ``{timeout}``);
* ``db.client.connection.create_time``, ``.wait_time``, ``.use_time`` (Histogram, ``s``).

Everything is read from ``pool.stats()`` when the metrics are collected, so the pool pays
nothing between collections. ``used`` counts the connections checked out; ``idle.max`` is
``max_size`` (every open connection may be idle) and ``idle.min`` is ``min_size``;
connections being opened or closed are in neither state. A
connector's pools are found again at every collection (those made after ``instrument()``
appear; each is named ``host/dbname``); a closed or garbage-collected pool's observable
series stop.

Why the histograms are replayed
-------------------------------
The pool already keeps its wait, use and create times in fixed log-scale buckets
(:class:`dbapi_pool.TimingStats`), and the OpenTelemetry API has no observable histogram
nor any way to hand over pre-aggregated buckets (the SDK-side ``MetricProducer`` bridge is
not in the Python SDK, and would tie us to one SDK and reader). So at each collection the
exporter replays, into ordinary histograms, the values the pool counted since the last
collection:

* the histograms advise the pool's own bounds (``explicit_bucket_boundaries_advisory``),
  and every replayed value lies inside the pool bucket it stands for, so OpenTelemetry's
  bucket counts equal the pool's (both buckets are upper-inclusive);
* inside its bucket each value sits at the same fraction ``t`` of the bucket's width, with
  ``t`` solved so the replayed values add up to the pool's sum: **count, bucket counts and
  sum are exact** (to float rounding), unlike recording midpoints, whose sum is off by up to
  a bucket's width per value;
* only ``min`` and ``max`` are synthetic: exact to within their bucket (x1.78).

The costs, documented rather than hidden: one ``record()`` per counted value (15-25 µs with
the Python SDK 1.45, two values per checkout), paid by the collecting thread at collection
time, never on the checkout path, but it holds the GIL: on PostgreSQL ``SELECT 1`` with 16
threads on 8 connections, 0.81x the throughput and a p99 x1.85 at a collection a second
(``benchmarks/README.md``, "Instrumentation"). The replay lets the GIL go every
``YIELD_EVERY`` values. ``instrument(..., histograms=False)`` leaves the three histograms
out (the other metrics cost ~2 ms a collection). A ``View`` that imposes other boundaries
regroups the buckets (count and sum stay exact). A replayed histogram's first collection
carries everything since the pool was created, like the ``timeouts`` counter. The values a
pool counted between the last collection and its close are replayed once at the next
collection; with cumulative temporality the SDK keeps exporting a closed pool's last
histogram point (an API limitation: a synchronous instrument cannot retract a series), with
delta temporality it stops.

Instrumenting twice
-------------------
``instrument()`` of a target already instrumented with that meter provider returns the
existing handle (one set of series). A pool reachable twice (itself and through its
connector) is exported once per collection. ``uninstrument(target)`` stops its series in
every meter provider (the callbacks stay registered, as the API cannot remove them, but
report nothing for it).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, MeterProvider, Observation

from dbapi_pool import AsyncConnectionPool, ConnectionPool, PoolStats, TimingStats, __version__
from dbapi_pool.metrics import check_target, pools_of, release_name

__all__ = ["Instrumentation", "instrument", "replay_values", "uninstrument"]

_EXPORTER = "dbapi_pool.metrics.otel"
_POOLS = (ConnectionPool, AsyncConnectionPool)
POOL_NAME = "db.client.connection.pool.name"
STATE = "db.client.connection.state"

#: (instrument name, PoolStats field, description) of the pool's timing histograms.
_TIMINGS = (
    ("db.client.connection.create_time", "create_time",
     "The time it took to create a new connection"),
    ("db.client.connection.wait_time", "wait_time",
     "The time it took to obtain an open connection from the pool"),
    ("db.client.connection.use_time", "use_time",
     "The time between borrowing a connection and returning it to the pool"),
)  # fmt: skip

_Read = Callable[[PoolStats], int]

#: (instrument name, unit, description, value of a snapshot) of the sizes and limits.
_SIZES: tuple[tuple[str, str, str, _Read], ...] = (
    ("db.client.connection.idle.max", "{connection}",
     "The maximum number of idle open connections allowed", lambda s: s.max_size),
    ("db.client.connection.idle.min", "{connection}",
     "The minimum number of idle open connections allowed", lambda s: s.min_size),
    ("db.client.connection.max", "{connection}",
     "The maximum number of open connections allowed", lambda s: s.max_size),
    ("db.client.connection.pending_requests", "{request}",
     "The number of current pending requests for an open connection", lambda s: s.waiting),
)  # fmt: skip


#: Records replayed between two yields of the GIL (about 0.5 ms of the SDK's work): a
#: collection after a busy interval replays thousands of values, and holding the GIL for
#: all of them at once stalled the pool's callers (p99 x3-x12 in benchmarks/README.md).
YIELD_EVERY = 32


def replay_values(
    counts: Sequence[int], total: float, bounds: Sequence[float]
) -> list[tuple[float, int]]:
    """Return ``(value, times)`` pairs that reproduce a bucketed distribution.

    ``counts[i]`` values lie in ``(bounds[i-1], bounds[i]]`` (the first bucket from 0, the
    last one above ``bounds[-1]``) and add up to ``total``. Each returned value lies in its
    bucket, at one common fraction of the buckets' widths chosen so the values' sum is
    ``total``; values above the last bound take whatever sum the others leave.
    """
    lowers = (0.0, *bounds)
    finite = [(i, n) for i, n in enumerate(counts[: len(bounds)]) if n > 0]
    overflow = counts[len(bounds)] if len(counts) > len(bounds) else 0
    floor = sum(n * lowers[i] for i, n in finite)
    width = sum(n * (bounds[i] - lowers[i]) for i, n in finite)
    rest = total - floor - overflow * bounds[-1]
    fraction = min(1.0, max(0.0, rest / width)) if width > 0 else 0.0
    pairs = [(_inside(lowers[i], bounds[i], fraction, i == 0), n) for i, n in finite]
    if overflow > 0:
        left = total - sum(value * n for value, n in pairs)
        pairs.append((max(math.nextafter(bounds[-1], math.inf), left / overflow), overflow))
    return pairs


def _inside(lower: float, upper: float, fraction: float, first: bool) -> float:
    """Return the point at ``fraction`` of ``(lower, upper]``, kept inside it despite
    rounding (the first bucket includes 0)."""
    value = min(upper, lower + fraction * (upper - lower))
    if not first and value <= lower:
        value = math.nextafter(lower, math.inf)
    return value


@dataclass
class _Replayed:
    """What was already replayed of one pool's timing: bucket counts and sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(TimingStats().bounds) + 1))
    sum: float = 0.0

    def catch_up(self, histogram: Histogram, timing: TimingStats, attrs: dict[str, str]) -> None:
        """Record into ``histogram`` the values ``timing`` counted since the last call."""
        delta = [max(0, now - done) for now, done in zip(timing.counts, self.counts, strict=True)]
        if any(delta):
            recorded = 0
            for value, times in replay_values(delta, timing.sum - self.sum, timing.bounds):
                for _ in range(times):
                    histogram.record(value, attrs)
                    recorded += 1
                    if recorded % YIELD_EVERY == 0:
                        time.sleep(0)  # let the pool's callers have the GIL meanwhile
        # A count can go down (a hand-over taken back): hold at the replayed level.
        self.counts = [max(now, done) for now, done in zip(timing.counts, self.counts, strict=True)]
        self.sum = timing.sum


class Instrumentation:
    """The handle ``instrument()`` returns: one target exported through one meter provider."""

    def __init__(
        self,
        exporter: _Exporter,
        target: Any,
        meter_provider: MeterProvider,
        histograms: bool = True,
    ) -> None:
        self._exporter = exporter
        self._target = weakref.ref(target)
        self.meter_provider = meter_provider
        #: Whether the target's timings are replayed into the three histograms.
        self.histograms = histograms

    @property
    def target(self) -> Any:
        """Return the instrumented pool or connector (``None`` once garbage-collected)."""
        return self._target()

    @property
    def active(self) -> bool:
        """Return whether the target's series are still reported."""
        return self._exporter.has(self)

    def uninstrument(self) -> None:
        """Stop reporting the target through this meter provider (idempotent)."""
        self._exporter.remove(self)
        target = self.target
        if target is not None:
            _release(target)

    def __repr__(self) -> str:
        state = "active" if self.active else "stopped"
        return f"<Instrumentation of {_describe(self.target)} ({state})>"


class _Exporter:
    """The instruments of one meter provider and the targets they report."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        # Held across a whole replay: two collections must not record the same values.
        self._replay_lock = threading.Lock()
        self._handles: list[Instrumentation] = []
        self._replayed: weakref.WeakKeyDictionary[Any, dict[str, _Replayed]] = (
            weakref.WeakKeyDictionary()
        )
        bounds = list(TimingStats().bounds)
        self._histograms = {
            attr: meter.create_histogram(
                name, unit="s", description=text, explicit_bucket_boundaries_advisory=bounds
            )
            for name, attr, text in _TIMINGS
        }
        # Registered first: its callback runs first and also replays the histograms.
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[self._observe_count],
            unit="{connection}",
            description="The number of connections that are currently in state described "
            "by the state attribute",
        )
        for name, unit, text, read in _SIZES:
            meter.create_observable_up_down_counter(
                name, callbacks=[self._observer(read)], unit=unit, description=text
            )
        meter.create_observable_counter(
            "db.client.connection.timeouts",
            callbacks=[self._observer(lambda s: s.timeouts)],
            unit="{timeout}",
            description="The number of connection timeouts that have occurred trying to "
            "obtain a connection from the pool",
        )

    def handle_for(self, target: Any) -> Instrumentation | None:
        """Return the live handle of ``target``, if it is instrumented here."""
        with self._lock:
            return next((h for h in self._handles if h.target is target), None)

    def add(self, handle: Instrumentation) -> None:
        """Start reporting ``handle``'s target."""
        with self._lock:
            self._handles.append(handle)

    def has(self, handle: Instrumentation) -> bool:
        """Return whether ``handle`` is reported here."""
        with self._lock:
            return handle in self._handles

    def remove(self, handle: Instrumentation) -> None:
        """Stop reporting ``handle``'s target (nothing if it was not)."""
        with self._lock:
            if handle in self._handles:
                self._handles.remove(handle)

    def _pools(self, *, histograms: bool = False) -> list[Any]:
        """Return the open pools of the live targets (``histograms``: of the targets
        whose timings are replayed), each once."""
        with self._lock:
            self._handles = [h for h in self._handles if h.target is not None]
            targets = [h.target for h in self._handles if h.histograms or not histograms]
        found: dict[int, Any] = {}
        for target in targets:
            for pool in pools_of(target, _EXPORTER):
                found.setdefault(id(pool), pool)
        return list(found.values())

    def _snapshots(self) -> Iterator[PoolStats]:
        for pool in self._pools():
            yield pool.stats()

    def _observer(
        self, read: Callable[[PoolStats], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read(s), {POOL_NAME: s.name}) for s in self._snapshots()]

        return observe

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        pools = self._pools()
        self._replay(self._pools(histograms=True))
        observations = []
        for pool in pools:
            stats = pool.stats()
            observations.append(Observation(stats.in_use, {POOL_NAME: stats.name, STATE: "used"}))
            observations.append(Observation(stats.idle, {POOL_NAME: stats.name, STATE: "idle"}))
        return observations

    def _replay(self, pools: list[Any]) -> None:
        """Replay the timings counted since the last collection: of the open pools, and a
        last time of those replayed before that have closed since."""
        with self._replay_lock:
            with self._lock:
                gone = [pool for pool in self._replayed if pool.closed]
                for pool in pools:
                    fresh = {attr: _Replayed() for attr in self._histograms}
                    self._replayed.setdefault(pool, fresh)
                todo = [(pool, self._replayed[pool]) for pool in (*pools, *gone)]
                for pool in gone:
                    del self._replayed[pool]
            for pool, replayed in todo:
                stats = pool.stats()
                attrs = {POOL_NAME: stats.name}
                for attr, histogram in self._histograms.items():
                    replayed[attr].catch_up(histogram, getattr(stats, attr), attrs)


_exporters: weakref.WeakKeyDictionary[Any, _Exporter] = weakref.WeakKeyDictionary()
_exporters_lock = threading.Lock()


def instrument(
    target: Any, meter_provider: MeterProvider | None = None, *, histograms: bool = True
) -> Instrumentation:
    """Export the statistics of a pool, or of every pool of a connector, as OpenTelemetry
    metrics through ``meter_provider`` (default: the global one); return the handle.

    ``histograms=False`` leaves out the wait, use and create time histograms, whose values
    the SDK records one by one (15-25 µs each in SDK 1.45, two per checkout: see the
    module's notes); the pool's own percentiles stay in ``stats()`` and Prometheus. A
    target already instrumented with this provider gets its existing handle back (with
    ``histograms`` as given now).
    """
    if not isinstance(histograms, bool):
        raise TypeError(f"{_EXPORTER}: histograms must be True or False, got {histograms!r}")
    check_target(target, _EXPORTER)
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    if not callable(getattr(provider, "get_meter", None)):
        raise TypeError(
            f"{_EXPORTER}: meter_provider must be an OpenTelemetry MeterProvider, got "
            f"{type(provider).__name__} (instrumenting {_describe(target)})"
        )
    with _exporters_lock:
        exporter = _exporters.get(provider)
        if exporter is None:
            exporter = _exporters[provider] = _Exporter(
                provider.get_meter("dbapi_pool", __version__)
            )
        handle = exporter.handle_for(target)
        if handle is None:
            handle = Instrumentation(exporter, target, provider, histograms)
            exporter.add(handle)
        handle.histograms = histograms
    return handle


def uninstrument(target: Any) -> None:
    """Stop exporting ``target`` (a pool or connector given to ``instrument()``) in every
    meter provider; ``ValueError`` if it was not instrumented."""
    with _exporters_lock:
        exporters = list(_exporters.values())
    handles = [h for h in (e.handle_for(target) for e in exporters) if h is not None]
    if not handles:
        raise ValueError(f"{_EXPORTER}: {_describe(target)} is not instrumented")
    for handle in handles:
        handle.uninstrument()


def _release(target: Any) -> None:
    """Give up the names of ``target``'s pools that no other instrumented target reports."""
    with _exporters_lock:
        exporters = list(_exporters.values())
    still = {id(pool) for exporter in exporters for pool in exporter._pools()}
    pools = [target] if isinstance(target, _POOLS) else list(target.pools().values())
    for pool in pools:
        if id(pool) not in still:
            release_name(pool)


def _describe(target: Any) -> str:
    name = getattr(target, "name", None)
    if isinstance(name, str):
        return f"{type(target).__name__} {name!r}"
    return repr(target) if target is not None else "a garbage-collected target"
