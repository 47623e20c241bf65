"""Prometheus exporter of the pools' statistics (``pip install 'dbapi-pool[prometheus]'``).

One process (threads, asyncio, gevent): register a :class:`PoolCollector`; it reads
``pool.stats()`` at each scrape, so the pool does no extra work between scrapes::

    from prometheus_client import REGISTRY, start_http_server
    from dbapi_pool.metrics.prometheus import PoolCollector

    REGISTRY.register(PoolCollector(pool))  # or a DatabaseConnector, or several of them
    start_http_server(9100, addr="127.0.0.1")
    # or, on a registry of its own: stop = serve_metrics(pool, port=9100); ...; stop()

One collector per registry: give it every pool (or connector) to export; a second
collector on the same registry is refused as duplicated time series. A connector's pools
created later appear at the next scrape; closed pools disappear from it.

Series, each labelled ``pool`` (the pool's name; two open pools may not share one):

- ``dbapi_pool_connections{state="idle|used|connecting"}``, ``dbapi_pool_max_connections``,
  ``dbapi_pool_min_connections``, ``dbapi_pool_waiting`` (gauges);
- counters since the pool was created: ``dbapi_pool_checkouts_total``, ``_waits_total``,
  ``_timeouts_total``, ``_refused_total``, ``_connects_total``, ``_connect_failures_total``,
  ``_connect_timeouts_total``, ``_unreachable_total``, ``_leaks_total``, and
  ``dbapi_pool_closes_total{reason=...}`` (one series per reason, zeros included);
- histograms in seconds: ``dbapi_pool_wait_seconds`` (waiting for a connection),
  ``dbapi_pool_use_seconds`` (holding one), ``dbapi_pool_create_seconds`` (connecting).

Buckets: the pool keeps 37 log-scale buckets from 1 µs to 1000 s (four per decade); the
exporter keeps every other bound (:data:`EXPORTED_BOUNDS`: 1 µs, 3.16 µs, 10 µs ... 1000 s,
then +Inf), so each histogram has 20 series per pool instead of 38. The exported bounds are
bounds of the pool's own buckets, so every exported count is exact.

gunicorn and other pre-fork servers
-----------------------------------
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) cannot run custom
collectors: a scrape is answered by one worker, which reads the metric files every worker
wrote, and a collector would only see the answering worker's pool. So each worker copies
its pools' statistics into multiprocess-mode metrics of the same names with
:class:`MultiProcessPoolMetrics`, and ``/metrics`` serves ``MultiProcessCollector``:

- counters and histograms: each update adds what changed since the previous update, and
  prometheus_client sums them over every worker, including exited ones (totals never drop
  when gunicorn replaces a worker);
- gauges use ``multiprocess_mode="livesum"``: the sum over the live workers (the
  ``dbapi_pool_max_connections`` of 4 workers with ``max_size=5`` is 20).

Set up, as prometheus_client documents it: export ``PROMETHEUS_MULTIPROC_DIR`` (an empty
folder) in the shell that starts gunicorn, and in the gunicorn configuration file::

    from prometheus_client import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)  # drop the exited worker's live gauges

In the application, in each worker (after the fork: not with ``preload_app``'s import)::

    pool = ConnectionPool(psycopg2, name="web", ...)
    pool_metrics = MultiProcessPoolMetrics(pool)
    pool_metrics.start(interval=5.0)  # writes now, then every 5 s from a daemon thread

    def metrics_app(environ, start_response):  # the /metrics route
        pool_metrics.update()  # this worker's values are fresh; the others' <= 5 s old
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        ...  # generate_latest(registry), as prometheus_client documents

Call ``update()`` also at the end of each request for values fresh to the last request.
A worker's values are as recent as its last update; between updates nothing is written.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from .. import PoolStats, TimingStats
from . import check_target, pools_of, release_name

__all__ = [
    "EXPORTED_BOUNDS",
    "MultiProcessPoolMetrics",
    "PoolCollector",
    "exported_buckets",
    "serve_metrics",
]

logger = logging.getLogger("dbapi_pool.metrics")

PREFIX: Final = "dbapi_pool"
#: The histograms' exported upper bounds (seconds): every other bound of the pool's own.
EXPORTED_BOUNDS: Final[tuple[float, ...]] = TimingStats().bounds[::2]

#: Connection states: (``state`` label, PoolStats field).
STATES: Final = (("idle", "idle"), ("used", "in_use"), ("connecting", "connecting"))
#: Gauges: (name after the prefix, PoolStats field, help).
GAUGES: Final = (
    ("max_connections", "max_size", "The pool's max_size."),
    ("min_connections", "min_size", "The pool's min_size."),
    ("waiting", "waiting", "Callers waiting for a connection."),
)
#: Counters: (name after the prefix and before ``_total``, PoolStats field, help).
COUNTERS: Final = (
    ("checkouts", "checkouts", "Connections handed to callers."),
    ("waits", "waits", "Checkouts that had to wait for a connection."),
    ("timeouts", "timeouts", "Checkouts that gave up after their timeout."),
    ("refused", "refused", "Callers refused at once: max_waiting callers already waited."),
    ("connects", "connects", "Connections opened."),
    ("connect_failures", "connect_failures", "Connects that failed."),
    ("connect_timeouts", "connect_timeouts", "Connects that exceeded connect_timeout."),
    ("unreachable", "unreachable", "Callers failed fast while connects were failing."),
    ("leaks", "leaks", "Checkouts held longer than leak_timeout."),
)
CLOSES_HELP: Final = "Connections closed, by reason."
CONNECTIONS_HELP: Final = "Connections by state (idle, used, connecting)."
#: Histograms: (name after the prefix, PoolStats field, help).
HISTOGRAMS: Final = (
    ("wait_seconds", "wait_time", "Time checkouts waited for a connection, in seconds."),
    ("use_seconds", "use_time", "Time callers held their connection, in seconds."),
    ("create_seconds", "create_time", "Time each successful connect took, in seconds."),
)


#: The ``le`` label of a bound, written as prometheus_client's own Histogram writes it.
_go_float: Callable[[float], str] = floatToGoString


def exported_buckets(timing: TimingStats) -> list[tuple[float, int]]:
    """Return ``(upper bound, values <= it)`` at :data:`EXPORTED_BOUNDS`, then +Inf."""
    kept = set(EXPORTED_BOUNDS)
    return [(b, n) for b, n in timing.cumulative() if b in kept or math.isinf(b)]


def _check_targets(targets: Sequence[Any], exporter: str) -> None:
    if not targets:
        raise TypeError(f"{exporter}() wants at least one pool or DatabaseConnector")
    for target in targets:
        check_target(target, exporter)


def _snapshots(targets: Sequence[Any], exporter: str) -> list[tuple[Any, PoolStats]]:
    """Return each open pool behind the targets (each once) with a stats() snapshot."""
    seen: set[int] = set()
    found = []
    for target in targets:
        for pool in pools_of(target, exporter):
            if id(pool) not in seen:
                seen.add(id(pool))
                found.append((pool, pool.stats()))
    return found


class PoolCollector(Collector):
    """Export pools' statistics to a prometheus_client registry, read at each scrape.

    ``targets`` are pools (sync or async) and connectors (their pools, including those
    they create later). A closed pool, or an object of another type, is refused.
    """

    def __init__(self, *targets: Any) -> None:
        _check_targets(targets, "PoolCollector")
        self._targets: tuple[Any, ...] = targets
        self._closed = False

    def describe(self) -> list[Metric]:
        """Return the metric families (no samples): the registry refuses duplicates."""
        return _families([])

    def collect(self) -> list[Metric]:
        """Return the metric families of the open pools, read from ``stats()`` now."""
        if self._closed:
            return []
        return _families(stats for _, stats in _snapshots(self._targets, "PoolCollector"))

    def close(self) -> None:
        """Stop exporting and give up the pools' names (after ``registry.unregister``)."""
        self._closed = True
        for target in self._targets:
            for pool in pools_of(target, "PoolCollector"):
                release_name(pool)


def serve_metrics(*targets: Any, port: int, addr: str = "127.0.0.1") -> Callable[[], None]:
    """Serve the targets' metrics at ``http://addr:port/metrics`` from a thread (a fresh
    registry holding one PoolCollector, prometheus_client's ``start_http_server``).

    Return the function that stops serving (and frees the port: prometheus_client before
    0.20 gives no handle on its server, which then serves until the process exits).
    """
    registry = CollectorRegistry()
    collector = PoolCollector(*targets)
    registry.register(collector)
    try:
        started = start_http_server(port, addr=addr, registry=registry)
    except BaseException:
        collector.close()
        raise

    def stop() -> None:
        if started:
            server, _ = started
            server.shutdown()
            server.server_close()
        collector.close()

    return stop


def _families(snapshots: Iterable[PoolStats]) -> list[Metric]:
    """Build every metric family from the snapshots (none: the families' names only)."""
    snapshots = list(snapshots)
    conns = GaugeMetricFamily(f"{PREFIX}_connections", CONNECTIONS_HELP, labels=["pool", "state"])
    gauges = [GaugeMetricFamily(f"{PREFIX}_{n}", h, labels=["pool"]) for n, _, h in GAUGES]
    counters = [CounterMetricFamily(f"{PREFIX}_{n}", h, labels=["pool"]) for n, _, h in COUNTERS]
    closes = CounterMetricFamily(f"{PREFIX}_closes", CLOSES_HELP, labels=["pool", "reason"])
    histograms = [
        HistogramMetricFamily(f"{PREFIX}_{n}", h, labels=["pool"]) for n, _, h in HISTOGRAMS
    ]
    for stats in snapshots:
        for state, field in STATES:
            conns.add_metric([stats.name, state], getattr(stats, field))
        for family, (_, field, _) in zip(gauges, GAUGES, strict=True):
            family.add_metric([stats.name], getattr(stats, field))
        for counter, (_, field, _) in zip(counters, COUNTERS, strict=True):
            counter.add_metric([stats.name], getattr(stats, field))
        for reason, count in stats.closes.items():
            closes.add_metric([stats.name, reason], count)
        for histogram, (_, field, _) in zip(histograms, HISTOGRAMS, strict=True):
            timing: TimingStats = getattr(stats, field)
            buckets = [(_go_float(b), n) for b, n in exported_buckets(timing)]
            histogram.add_metric([stats.name], buckets, timing.sum)
    return [conns, *gauges, *counters, closes, *histograms]


# -- multiprocess mode (gunicorn) -------------------------------------------------------


class _Writers:
    """The multiprocess-mode metrics of this process, created once (on no registry:
    ``MultiProcessCollector`` reads their files)."""

    def __init__(self) -> None:
        self.connections = Gauge(
            f"{PREFIX}_connections",
            CONNECTIONS_HELP,
            ["pool", "state"],
            registry=None,
            multiprocess_mode="livesum",
        )
        self.gauges = [
            Gauge(f"{PREFIX}_{n}", h, ["pool"], registry=None, multiprocess_mode="livesum")
            for n, _, h in GAUGES
        ]
        self.counters = [
            Counter(f"{PREFIX}_{n}", h, ["pool"], registry=None) for n, _, h in COUNTERS
        ]
        self.closes = Counter(f"{PREFIX}_closes", CLOSES_HELP, ["pool", "reason"], registry=None)
        self.histograms = [
            Histogram(f"{PREFIX}_{n}", h, ["pool"], registry=None, buckets=EXPORTED_BOUNDS)
            for n, _, h in HISTOGRAMS
        ]


_writers: _Writers | None = None
#: Per pool name: the pool and the snapshot last written (shared by every
#: MultiProcessPoolMetrics of the process, so that two of them never add a change twice).
_written: dict[str, tuple[weakref.ref[Any], PoolStats]] = {}
_write_lock = threading.Lock()


def _write(stats: PoolStats, before: PoolStats, writers: _Writers) -> None:
    """Set the gauges to ``stats`` and add its changes since ``before`` to the rest."""
    name = stats.name
    for state, field in STATES:
        writers.connections.labels(pool=name, state=state).set(getattr(stats, field))
    for gauge, (_, field, _) in zip(writers.gauges, GAUGES, strict=True):
        gauge.labels(pool=name).set(getattr(stats, field))
    for counter, (_, field, _) in zip(writers.counters, COUNTERS, strict=True):
        counter.labels(pool=name).inc(getattr(stats, field) - getattr(before, field))
    for reason, count in stats.closes.items():
        writers.closes.labels(pool=name, reason=reason).inc(count - before.closes.get(reason, 0))
    for histogram, (_, field, _) in zip(writers.histograms, HISTOGRAMS, strict=True):
        now, then = getattr(stats, field), getattr(before, field)
        _add_to_histogram(histogram.labels(pool=name), _per_bucket(now, then), now.sum - then.sum)


def _per_bucket(now: TimingStats, then: TimingStats) -> list[int]:
    """Return the values added to each exported bucket (not cumulative) between two."""
    added = [
        n - t for (_, n), (_, t) in zip(exported_buckets(now), exported_buckets(then), strict=True)
    ]
    return [count - below for count, below in zip(added, [0, *added[:-1]], strict=True)]


def _add_to_histogram(child: Histogram, counts: Sequence[int], seconds: float) -> None:
    """Add ``counts[i]`` values to bucket ``i`` and ``seconds`` to the sum.

    prometheus_client's only public way in is ``observe()``, one value at a time with its
    exact amount, which the pool no longer has: it keeps counts per bucket. So the counts
    go to the child's bucket and sum values directly, the objects whose files
    multiprocess mode sums (``_buckets``/``_sum``: unchanged from 0.17 to 0.26; the
    multiprocess tests check the scraped counts and sums against the pool's own).
    """
    buckets, total = getattr(child, "_buckets", None), getattr(child, "_sum", None)
    if not isinstance(buckets, list) or len(buckets) != len(counts) or total is None:
        raise RuntimeError(
            "MultiProcessPoolMetrics: this prometheus_client's Histogram has no per-bucket "
            "values it knows; use a prometheus_client release from 0.17 to 0.26"
        )
    for value, count in zip(buckets, counts, strict=True):
        if count:
            value.inc(count)
    if seconds:
        total.inc(seconds)


class MultiProcessPoolMetrics:
    """Copy pools' statistics into prometheus_client multiprocess-mode metrics (gunicorn).

    Create one in each worker process, after the fork; ``update()`` writes the current
    values, ``start()`` does it every ``interval`` seconds from a daemon thread. Needs
    ``PROMETHEUS_MULTIPROC_DIR`` set before the process started (see the module's doc).
    """

    def __init__(self, *targets: Any) -> None:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            raise RuntimeError(
                "MultiProcessPoolMetrics needs prometheus_client's multiprocess mode: set "
                "PROMETHEUS_MULTIPROC_DIR to an empty folder before the server starts"
            )
        _check_targets(targets, "MultiProcessPoolMetrics")
        self._targets: tuple[Any, ...] = targets
        self._names: set[str] = set()
        self._stop: threading.Event | None = None

    def update(self) -> None:
        """Write the pools' current values: gauges set, counters and histograms added to.

        A pool closed since the last update has its gauges set to 0 (multiprocess mode
        cannot remove series); its counters keep their totals.
        """
        global _writers
        with _write_lock:
            if _writers is None:
                _writers = _Writers()
            snapshots = _snapshots(self._targets, "MultiProcessPoolMetrics")
            current = {stats.name for _, stats in snapshots}
            for name in self._names - current:
                _zero_gauges(name, _writers)
                _written.pop(name, None)
            for pool, stats in snapshots:
                _write(stats, _swap_written(pool, stats), _writers)
            self._names = current

    def start(self, interval: float = 5.0) -> None:
        """Update now, then every ``interval`` seconds from a daemon thread until ``stop()``
        or until this object is garbage-collected (the thread logs its errors).

        The first update runs in the caller so that this process's metric files exist
        before it goes on: prometheus_client can fail to read a file another thread is
        creating at that moment.
        """
        if not (interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        if self._stop is not None:
            raise RuntimeError("MultiProcessPoolMetrics.start(): already started")
        self.update()
        self._stop = threading.Event()
        thread = threading.Thread(
            target=_update_every,
            args=(weakref.ref(self), self._stop, interval),
            name="dbapi-pool-prometheus",
            daemon=True,
        )
        thread.start()

    def stop(self) -> None:
        """Stop the thread ``start()`` started (no-op if none)."""
        if self._stop is not None:
            self._stop.set()
            self._stop = None


def _swap_written(pool: Any, stats: PoolStats) -> PoolStats:
    """Return the snapshot last written for ``pool`` and record ``stats`` in its place
    (zeros for a pool not seen yet: a new pool with a reused name starts from zero)."""
    ref, before = _written.get(stats.name, (None, None))
    if ref is None or ref() is not pool or before is None:
        before = PoolStats(stats.name, 0, 0)
    _written[stats.name] = (weakref.ref(pool), stats)
    return before


def _zero_gauges(name: str, writers: _Writers) -> None:
    for state, _ in STATES:
        writers.connections.labels(pool=name, state=state).set(0)
    for gauge in writers.gauges:
        gauge.labels(pool=name).set(0)


def _update_every(
    ref: weakref.ref[MultiProcessPoolMetrics], stop: threading.Event, interval: float
) -> None:
    """Run the updates of ``start()``, holding the exporter (and its pools) weakly."""
    while not stop.wait(interval):
        metrics = ref()
        if metrics is None:
            return
        try:
            metrics.update()
        except Exception as exc:
            logger.warning(
                "prometheus multiprocess update failed (%s: %s)", type(exc).__name__, exc
            )
        del metrics
