"""ConnectHealth: whether the database answers connects, and when to try again.

While connects fail, the pool does not let every caller start its own: callers that would
connect fail fast with the driver's last error, and one attempt at a time is made after an
exponential backoff with full jitter (AWS's "full jitter": a random delay between 0 and the
capped exponential), so a restarted database is not met by a storm of connects.

A server that answers but refuses the credentials (a wrong password, an unknown user) is
paced the same way (each attempt is one more failed login the server sees: MariaDB's
``max_password_errors`` blocks an account after that many), but reported as what it is.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PoolError

__all__ = ["ConnectHealth", "fail_fast_error"]


class ConnectHealth:
    """Count the connect failures in a row and schedule the next attempt."""

    __slots__ = (
        "_base",
        "_cap",
        "_rng",
        "failed_at",
        "failures",
        "is_auth_error",
        "last_error",
        "refused",
        "retry_at",
    )

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
        #: Tells a refused login among connect errors (the driver profile's test; set by
        #: the front-end, which knows the driver). A pure function of the error: no I/O.
        self.is_auth_error: Callable[[BaseException], bool] | None = None
        #: True while the last failure was the server refusing the credentials.
        self.refused = False

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
            self.refused = self.refusal(error)
        ceiling = min(self._cap, self._base * 2.0 ** min(self.failures - 1, 60))
        self.retry_at = now + self._rng() * ceiling

    def succeeded(self) -> None:
        """Record a successful connect: the database answers again."""
        self.failures = 0
        self.last_error = None
        self.refused = False
        self.retry_at = 0.0

    def may_attempt(self, now: float) -> bool:
        """Tell whether a connect may be tried now."""
        return self.failures == 0 or now >= self.retry_at

    def refusal(self, error: BaseException) -> bool:
        """Tell whether a connect error is the server refusing the credentials."""
        test = self.is_auth_error
        if test is None:
            return False
        try:
            return bool(test(error))
        except Exception:  # a profile's test must not break the bookkeeping
            return False


def fail_fast_error(pool: str, health: ConnectHealth, now: float, counts: str) -> BaseException:
    """Build the fail-fast error while connects fail: the driver's own last error.

    A new instance of the driver's class (``except driver.OperationalError`` keeps working),
    chained to the original, with the pool's context in a note.
    """
    last = health.last_error
    wait = max(0.0, health.retry_at - now)
    if health.refused:  # the server answers: not an outage (issue 11)
        what = "the database refused the credentials (authentication failed; "
    else:
        what = "the database is unreachable ("
    context = (
        f"pool {pool!r}: {what}{health.failures} connects failed in a row; next attempt "
        f"in {wait:.2f} s) ({counts})"
    )
    error: BaseException
    try:
        error = type(last)(*last.args) if last is not None else PoolError(context)
    except Exception:  # a driver class that cannot be rebuilt from its args
        error = PoolError(f"{context}: {type(last).__name__}: {last}")
    error.__cause__ = last
    if hasattr(error, "add_note") and last is not None:
        error.add_note(context)
    return error
