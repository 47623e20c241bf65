"""DriverPolicy: what a pool asks about its driver's connections, decided once.

Made from the driver profile and the pool's settings when the pool is built, so the
front-ends ask one object (reset? commit? ping? broken?) instead of reading the profile
and the settings at each call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._core.state import PING, PROBE
from ._drivers.base import socket_readable

if TYPE_CHECKING:
    from ._core import Entry, PoolState
    from ._drivers import DriverProfile
    from .config import PoolConfig, ResetSpec

__all__ = ["DriverPolicy", "resolve_reset"]


def resolve_reset(
    profile: DriverProfile, reset: ResetSpec, pool_name: str
) -> Callable[[Any], object] | None:
    """Turn the ``reset`` setting into the call run on a returned connection (or ``None``)."""
    if reset == "rollback":
        return profile.reset
    if reset == "full":
        if profile.full_reset is None:
            raise ValueError(
                f"pool {pool_name!r}: reset='full' is not available for "
                f"{profile.name} (it has no session-reset call); pass a callable"
            )
        return profile.full_reset
    return reset  # type: ignore[return-value]


class DriverPolicy:
    """Answer the pool's questions about one driver's connections under its settings.

    The attributes are read on the hot paths (``get``/``put`` bind them as they need):
    ``reset`` (the call run on a returned connection, or ``None``), ``is_broken``,
    ``ping``, ``fileno`` and ``validates`` (whether idle connections can be checked at all).
    """

    __slots__ = (
        "_reset_skip",
        "_transaction_idle",
        "fileno",
        "is_broken",
        "is_disconnect",
        "ping",
        "reset",
        "validates",
    )

    def __init__(self, profile: DriverProfile, config: PoolConfig) -> None:
        self.reset = resolve_reset(profile, config.reset, config.name)
        self.is_broken = profile.is_broken
        self.is_disconnect = profile.is_disconnect
        self.ping = profile.ping
        self.fileno = profile.fileno
        # Check idle connections before lending them only if the driver gives a way.
        self.validates = profile.fileno is not None or profile.ping is not None
        #: ``conn -> True`` when surely no transaction is open (no I/O), else ``None``.
        self._transaction_idle = profile.transaction_idle
        # A rollback of a session with nothing open is a wasted round trip; a callable
        # reset may do more than roll back, so it always runs.
        self._reset_skip = profile.transaction_idle if config.reset == "rollback" else None

    def needs_reset(self, conn: Any) -> bool:
        """Tell whether a returned connection must go through the reset."""
        if self.reset is None:
            return False
        skip = self._reset_skip
        return skip is None or not skip(conn)

    def needs_commit(self, conn: Any) -> bool:
        """Tell whether ending a ``with`` block must send a COMMIT."""
        idle = self._transaction_idle
        return idle is None or not idle(conn)

    def needs_ping(self, entry: Entry, now: float, state: PoolState) -> bool:
        """Tell whether an idle connection needs a ping before it is lent; raise if it is
        surely dead.

        Where the driver exposes its socket, every checkout probes it (keeping the GIL:
        ``socket_readable``): an idle socket with something to read was closed by the
        server, or got a notice, and a ping decides. Elsewhere a connection idle longer
        than ``check_idle_after`` is pinged. ``PoolState.check_level`` decides which.
        """
        conn = entry.conn
        if self.is_broken is not None and self.is_broken(conn):
            raise ConnectionError("the driver reports the connection closed")
        fileno = self.fileno
        level = state.check_level(entry, now, fileno is not None)
        if level == PROBE and fileno is not None:
            return socket_readable(fileno(conn)) and self.ping is not None
        return level == PING and self.ping is not None

    def check(self, conn: Any) -> None:
        """Check an idle connection now (blocking); raise if it is dead.

        Without a ping in the driver's profile, the socket probe decides; without either
        (sqlite3, an unknown driver: ``SELECT 1`` is not valid everywhere) only the
        driver's own "closed" flag is read.
        """
        if self.is_broken is not None and self.is_broken(conn):
            raise ConnectionError("the driver reports the connection closed")
        if self.ping is not None:
            self.ping(conn)
        elif self.fileno is not None and socket_readable(self.fileno(conn)):
            raise ConnectionError("the server closed the connection (socket readable)")

    def broken(self, conn: Any) -> str | None:
        """Say ``"broken"`` if the driver already knows a returned connection is dead."""
        is_broken = self.is_broken
        return "broken" if is_broken is not None and is_broken(conn) else None

    def note_error(self, entry: Entry, exc: BaseException) -> None:
        """Mark a connection whose call failed with a "dead" error: closed on return."""
        is_disconnect = self.is_disconnect
        if is_disconnect is not None and is_disconnect(exc):
            entry.broken = True
