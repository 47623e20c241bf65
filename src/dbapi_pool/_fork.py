"""Fork safety: a forked child starts every pool empty and never touches the parent's sessions.

A pool registers with :func:`track`; in a child process each tracked pool's
``_restart_in_child()`` runs, and the parent's connections are :func:`disown`-ed: kept
referenced (so no finalizer closes them) with their sockets pointed at /dev/null.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ForkAware", "disown", "track"]

logger = logging.getLogger("dbapi_pool")


class ForkAware(Protocol):
    """What the fork handling needs of a pool."""

    name: str

    def _restart_in_child(self) -> None:
        """Start empty in a forked child, disowning the parent's connections."""


#: Every live pool, so that a forked child can disown its parent's connections.
_POOLS: weakref.WeakSet[Any] = weakref.WeakSet()
#: The parent's connections, kept referenced in a child so that no finalizer closes them
#: (a close sends Terminate / COM_QUIT on the socket the parent still uses).
_INHERITED: list[Any] = []


def track(pool: ForkAware) -> None:
    """Have ``pool`` restart empty in every child process forked from now on."""
    _POOLS.add(pool)


def disown(conn: Any, fileno: Callable[[Any], int] | None) -> None:
    """Keep a parent's connection from ever being used or closed in this child."""
    _INHERITED.append(conn)
    if fileno is None:
        return
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, fileno(conn))
        finally:
            os.close(devnull)
    except Exception:  # no socket any more: nothing to protect
        pass


def _after_fork_in_child() -> None:
    pool: ForkAware
    for pool in list(_POOLS):
        try:
            pool._restart_in_child()
        except Exception:  # never let one pool break the child
            logger.exception("pool %r: could not reset after fork", pool.name)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
