"""Exporters of the pools' own statistics: OpenTelemetry (``metrics.otel``) and
Prometheus (``metrics.prometheus``). Both read ``stats()`` snapshots at collection time,
so an exporter costs the pool nothing between scrapes.

This module holds what they share: finding the pools behind a pool or a connector, and
making sure each exported pool's name (the label of its series) is its own.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any

from .. import AsyncConnectionPool, AsyncDatabaseConnector, ConnectionPool, DatabaseConnector

__all__ = ["claim_name", "pools_of", "release_name"]

logger = logging.getLogger("dbapi_pool.metrics")

_POOLS = (ConnectionPool, AsyncConnectionPool)
_CONNECTORS = (DatabaseConnector, AsyncDatabaseConnector)

_names: dict[str, weakref.ref[Any]] = {}
_names_lock = threading.Lock()
_warned: set[str] = set()


def check_target(target: Any, exporter: str) -> None:
    """Refuse what cannot be instrumented: not a pool or connector, or a closed pool."""
    if isinstance(target, _POOLS):
        if target.closed:
            raise ValueError(f"{exporter}: pool {target.name!r} is closed; nothing to export")
        claim_name(target, exporter)
        return
    if not isinstance(target, _CONNECTORS):
        raise TypeError(
            f"{exporter}: expected a pool or a DatabaseConnector, got {type(target).__name__}"
        )


def pools_of(target: Any, exporter: str) -> list[Any]:
    """Return the open pools behind ``target`` (a pool, or every pool a connector made so
    far); a connector's pool whose name another live pool has claimed is skipped with one
    warning (its series would be mixed with the other's)."""
    pools = [target] if isinstance(target, _POOLS) else list(target.pools().values())
    found = []
    for pool in pools:
        if pool.closed:
            continue
        try:
            claim_name(pool, exporter)
        except ValueError as exc:
            if pool.name not in _warned:
                _warned.add(pool.name)
                logger.warning("%s", exc)
            continue
        found.append(pool)
    return found


def claim_name(pool: Any, exporter: str) -> None:
    """Reserve ``pool.name`` for ``pool`` as a metrics label, for as long as it lives and
    is open: a second open pool with the same name is a ``ValueError``."""
    with _names_lock:
        ref = _names.get(pool.name)
        other = None if ref is None else ref()
        if other is not None and other is not pool and not other.closed:
            raise ValueError(
                f"{exporter}: two open pools are named {pool.name!r}, and metrics tell pools "
                "apart by name; give one of them another name= (or close the other first)"
            )
        _names[pool.name] = weakref.ref(pool)


def release_name(pool: Any) -> None:
    """Give up ``pool.name`` (when its exporter is removed)."""
    with _names_lock:
        ref = _names.get(pool.name)
        if ref is not None and ref() in (pool, None):
            del _names[pool.name]
