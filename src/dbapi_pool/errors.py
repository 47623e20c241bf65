"""The pool's own errors, all under :class:`PoolError`.

Driver errors (``psycopg2.OperationalError``, ``MySQLdb.OperationalError``...) are never
wrapped: they pass through unchanged so that ``except driver.Error`` keeps working. The
errors below are the pool's own conditions. Their messages carry the pool's name and its
counts and never a connect argument, so they are safe to log.
"""

from __future__ import annotations

__all__ = [
    "ConnectTimeout",
    "ConnectionReleased",
    "ForeignConnection",
    "PoolClosed",
    "PoolError",
    "PoolTimeout",
    "TooManyWaiters",
    "UnknownHost",
    "WrongEventLoop",
]


class PoolError(Exception):
    """Base class of every error the pool raises itself."""


class PoolTimeout(PoolError, TimeoutError):
    """No connection became available within the checkout timeout."""


class ConnectTimeout(PoolError, TimeoutError):
    """The driver's ``connect()`` took longer than ``connect_timeout``."""


class PoolClosed(PoolError):
    """The pool was closed: it hands out no more connections."""


class TooManyWaiters(PoolError):
    """``max_waiting`` callers already wait: this one is refused at once."""


class ConnectionReleased(PoolError):
    """A pooled connection was used after it went back to its pool."""


class ForeignConnection(PoolError, ValueError):
    """``put()`` got a connection this pool did not hand out."""


class UnknownHost(PoolError, KeyError):
    """A connector has no credentials for a host and no ``'default'`` entry."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0]) if self.args else ""


class WrongEventLoop(PoolError, RuntimeError):
    """An async pool was used from an event loop other than the one it was opened on."""
