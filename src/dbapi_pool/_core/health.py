"""ConnectHealth: whether the database answers connects, and when to try again.

While connects fail, the pool does not let every caller start its own: callers that would
connect fail fast with the driver's last error, and one attempt at a time is made after an
exponential backoff with full jitter (AWS's "full jitter": a random delay between 0 and the
capped exponential), so a restarted database is not met by a storm of connects.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ConnectHealth"]


class ConnectHealth:
    """Count the connect failures in a row and schedule the next attempt."""

    __slots__ = ("_base", "_cap", "_rng", "failed_at", "failures", "last_error", "retry_at")

    def __init__(self, base: float, cap: float, rng: Callable[[], float]) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng
        #: Connect failures since the last success; 0 means the database answers.
        self.failures = 0
        self.last_error: BaseException | None = None
        #: Monotonic time before which no new attempt is made while down.
        self.retry_at = 0.0
        self.failed_at = 0.0

    @property
    def down(self) -> bool:
        """Tell whether the last connect failed."""
        return self.failures > 0

    def failed(self, now: float, error: BaseException | None) -> None:
        """Record a failed connect and schedule the next attempt."""
        self.failures += 1
        self.failed_at = now
        if error is not None:
            self.last_error = error
        ceiling = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 60))
        self.retry_at = now + self._rng() * ceiling

    def succeeded(self) -> None:
        """Record a successful connect: the database answers again."""
        self.failures = 0
        self.last_error = None
        self.retry_at = 0.0

    def may_attempt(self, now: float) -> bool:
        """Tell whether a connect may be tried now."""
        return self.failures == 0 or now >= self.retry_at
