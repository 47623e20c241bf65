"""Fixed log-scale timing histograms: wait, use (hold) and create (connect) times.

The core feeds them with the ``now`` values the front-ends already pass (no clock read of
its own), under the pool's lock. A histogram is a fixed list of counts and a running sum:
recording one value is a ``bisect`` and two additions, and nothing grows per checkout.
``stats()`` turns them into frozen :class:`TimingStats` with percentile estimates.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

__all__ = ["BOUNDS", "Histogram", "TimingStats"]

#: Upper bounds of the buckets, in seconds: four per decade (x1.78 each), from 1 µs to
#: 1000 s. A value lands in the first bucket whose bound is >= it (Prometheus' ``le``);
#: one more bucket holds what exceeds the last bound.
BOUNDS: Final[tuple[float, ...]] = tuple(10.0 ** (k / 4) for k in range(-24, 13))


class Histogram:
    """Count values into the :data:`BOUNDS` buckets and keep their sum (not thread-safe:
    the pool's lock guards it)."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0.0

    def record(self, seconds: float) -> None:
        """Count one value (the hot paths inline these two lines)."""
        self.counts[bisect_left(BOUNDS, seconds)] += 1
        self.sum += seconds

    def snapshot(self, zeros: int = 0) -> TimingStats:
        """Freeze the counts; ``zeros`` more values of 0 s go to the first bucket."""
        counts = list(self.counts)
        counts[0] += max(0, zeros)
        return TimingStats(sum(counts), self.sum, tuple(counts))


@dataclass(frozen=True)
class TimingStats:
    """One timing's distribution since the pool was created, in seconds.

    ``counts[i]`` counts the values in ``(BOUNDS[i-1], BOUNDS[i]]`` (the first bucket from
    0); the last one those above ``BOUNDS[-1]``. Percentiles are estimates: interpolated
    on the log scale inside the bucket that holds them (at most x1.78 off).
    """

    count: int = 0
    sum: float = 0.0
    counts: tuple[int, ...] = (0,) * (len(BOUNDS) + 1)

    @property
    def bounds(self) -> tuple[float, ...]:
        """Return the buckets' upper bounds in seconds (the last bucket has none: +Inf)."""
        return BOUNDS

    @property
    def mean(self) -> float | None:
        """Return the mean in seconds, or ``None`` with no value."""
        return self.sum / self.count if self.count else None

    def cumulative(self) -> list[tuple[float, int]]:
        """Return ``(upper bound, values <= it)`` pairs, ending with ``(inf, count)``."""
        pairs = []
        total = 0
        for bound, count in zip((*BOUNDS, float("inf")), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs

    def percentile(self, q: float) -> float | None:
        """Estimate the value below which a fraction ``q`` (0-1) of the values fall."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"percentile wants a fraction between 0 and 1, got {q!r}")
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                return _inside(index, (rank - seen) / count)
            seen += count
        return BOUNDS[-1]  # not reached: the counts sum to count

    @property
    def p50(self) -> float | None:
        """Estimate the median, in seconds."""
        return self.percentile(0.5)

    @property
    def p90(self) -> float | None:
        """Estimate the 90th percentile, in seconds."""
        return self.percentile(0.9)

    @property
    def p99(self) -> float | None:
        """Estimate the 99th percentile, in seconds."""
        return self.percentile(0.99)

    def __str__(self) -> str:
        if not self.count:
            return "n=0"
        return (
            f"n={self.count} mean={_ms(self.mean)} p50={_ms(self.p50)} "
            f"p90={_ms(self.p90)} p99={_ms(self.p99)}"
        )


def _inside(index: int, fraction: float) -> float:
    """Interpolate in bucket ``index``: linearly in the first (from 0), on the log scale
    in the others; the overflow bucket reports its lower bound."""
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    upper = BOUNDS[index]
    if index == 0:
        return upper * fraction
    lower = BOUNDS[index - 1]
    return float(lower * (upper / lower) ** fraction)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3g}ms"
