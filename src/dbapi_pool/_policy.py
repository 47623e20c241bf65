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

__all__ = ["CheckRejected", "DriverPolicy", "resolve_reset"]


class CheckRejected(ConnectionError):
    """Raised (and caught: the connection is replaced) when ``check`` returned ``False``."""


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
    ``ping``, ``fileno``, ``validates`` (whether idle connections can be checked at all),
    ``lend_check`` (the blocking call that checks an idle connection before it is lent:
    the ``check`` setting's, else the ping), ``configure_hook`` and ``check_hook`` (the
    ``configure`` and ``check`` settings).
    """

    __slots__ = (
        "_reset_skip",
        "_transaction_idle",
        "check_hook",
        "configure_hook",
        "fileno",
        "is_broken",
        "is_disconnect",
        "lend_check",
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
        self.configure_hook = config.configure
        self.check_hook = config.check
        self.lend_check = profile.ping if config.check is None else self.run_check
        # Check idle connections before lending them only if the driver (or the user's
        # check) gives a way.
        self.validates = (
            profile.fileno is not None or profile.ping is not None or config.check is not None
        )
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
        if self.check_hook is not None:
            # The user's check runs at every checkout: a socket probe could only decide
            # whether to run it.
            return True
        fileno = self.fileno
        level = state.check_level(entry, now, fileno is not None)
        if level == PROBE and fileno is not None:
            return socket_readable(fileno(conn)) and self.ping is not None
        return level == PING and self.ping is not None

    def configure_new(self, conn: Any) -> None:
        """Run ``configure`` on a new connection (blocking), then commit what it left open
        (a ``SET`` in a transaction would be undone by the first reset); if that fails,
        close the connection and raise."""
        assert self.configure_hook is not None
        try:
            self.configure_hook(conn)
            self.configured(conn)
        except BaseException:
            _close_now(conn)
            raise

    def configured(self, conn: Any, cursors: list[Any] | None = None) -> None:
        """Close the cursors ``configure`` left open, and commit its transaction."""
        for cursor in cursors or ():
            cursor.close()
        if self.needs_commit(conn):
            conn.commit()

    def run_check(self, conn: Any) -> None:
        """Run ``check`` on an idle connection (blocking); raise if it rejects it."""
        assert self.check_hook is not None
        if self.check_hook(conn) is False:
            raise CheckRejected("the check returned False")
        self.checked(conn)

    def checked(self, conn: Any, cursors: list[Any] | None = None) -> None:
        """Close the cursors ``check`` left open; roll back a transaction it began (only
        where the driver tells: elsewhere a rollback per checkout would cost a round trip)."""
        for cursor in cursors or ():
            cursor.close()
        if self.needs_check_settled(conn):
            conn.rollback()

    def needs_check_settled(self, conn: Any) -> bool:
        """Tell whether ``check`` surely left a transaction open (no I/O)."""
        idle = self._transaction_idle
        return idle is not None and not idle(conn)

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


def _close_now(conn: Any) -> None:
    """Close a connection that failed its ``configure`` (blocking); the hook's error is
    the one to report, not the close's."""
    try:
        conn.close()
    except Exception:
        pass
