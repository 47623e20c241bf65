"""The process-wide pools behind the Django backends, and what the three wrappers share.

Configured as Django 5.1's own pool is: ``DATABASES[alias]["OPTIONS"]["pool"]`` is ``True``
or a dict of dbapi-pool settings. One :class:`dbapi_pool.ConnectionPool` is made lazily per
database alias and connection settings; ``connection.close()`` (and so Django's
``close_old_connections()`` at the end of each request) gives the connection back to it,
where dbapi-pool rolls it back. See ``docs/django.md``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS

from dbapi_pool import ConnectionPool, PooledConnection
from dbapi_pool.config import SETTINGS

__all__ = ["PoolClosingCreation", "PooledDatabaseWrapper", "close_pools", "pool_options"]

#: Settings Django builds itself from ``DATABASES``, refused inside ``OPTIONS["pool"]``.
DJANGO_OWNED = {
    "connect_args": "the connect arguments come from DATABASES (NAME, USER, HOST, OPTIONS...)",
}

#: The pools by (alias, digest of the connection settings): the digest keeps the password
#: out of anything that prints this mapping.
_POOLS: dict[tuple[str, str], ConnectionPool] = {}
#: Held only to look up or add a pool (two threads must not both make one).
_LOCK = threading.Lock()


def pool_options(alias: str, settings_dict: dict[str, Any]) -> dict[str, Any] | None:
    """Return the dbapi-pool settings asked for by ``OPTIONS["pool"]``, or ``None``.

    Raises ``ImproperlyConfigured`` for persistent connections (``CONN_MAX_AGE`` not 0),
    as Django's own pool does, for a setting dbapi-pool does not have, and for one that
    Django owns.
    """
    options = settings_dict["OPTIONS"].get("pool")
    if alias == NO_DB_ALIAS or not options:
        return None
    where = f"settings.DATABASES[{alias!r}]['OPTIONS']['pool']"
    if settings_dict.get("CONN_MAX_AGE", 0) != 0:
        raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
    if options is True:
        return {}
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"{where} must be True or a dict of dbapi-pool settings")
    for setting in options:
        if setting in DJANGO_OWNED:
            raise ImproperlyConfigured(
                f"{where}: {setting!r} is set by Django's backend, not here: "
                f"{DJANGO_OWNED[setting]}"
            )
        if setting not in SETTINGS:
            raise ImproperlyConfigured(
                f"{where}: unknown dbapi-pool setting {setting!r} (known: "
                f"{', '.join(sorted(SETTINGS - DJANGO_OWNED.keys()))})"
            )
    return dict(options)


def _digest(settings_dict: dict[str, Any]) -> str:
    """Fingerprint what a connection depends on (a changed NAME or time zone: a new pool)."""
    parts = [
        repr(settings_dict.get(key))
        for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS", "TIME_ZONE")
    ]
    parts.append(repr((settings.USE_TZ, settings_dict.get("CONN_HEALTH_CHECKS"))))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _make_pool(wrapper: Any, options: dict[str, Any]) -> ConnectionPool:
    """Create a pool connecting as ``wrapper`` would, Django's connect keywords given as
    ``connect_args`` where they share a name with a pool setting (``connect_timeout``)."""
    params = wrapper.get_connection_params()
    params.update(wrapper.pool_connect_overrides())
    kwargs = {key: value for key, value in params.items() if key not in SETTINGS}
    clashing = {key: value for key, value in params.items() if key in SETTINGS}
    pool_settings = {"name": f"django:{wrapper.alias}", **options}
    if wrapper.settings_dict["CONN_HEALTH_CHECKS"]:
        pool_settings.setdefault("pre_ping", True)
    if clashing:
        pool_settings["connect_args"] = lambda: clashing
    try:
        return ConnectionPool(wrapper.Database, **kwargs, **pool_settings)
    except (TypeError, ValueError) as err:
        raise ImproperlyConfigured(
            f"settings.DATABASES[{wrapper.alias!r}]['OPTIONS']['pool']: {err}"
        ) from err


def pool_for(wrapper: Any) -> ConnectionPool | None:
    """Return the pool of ``wrapper``'s alias and settings, made on first use."""
    options = pool_options(wrapper.alias, wrapper.settings_dict)
    if options is None:
        return None
    key = (wrapper.alias, _digest(wrapper.settings_dict))
    pool = _POOLS.get(key)
    if pool is not None and not pool.closed:
        return pool
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None or pool.closed:
            pool = _POOLS[key] = _make_pool(wrapper, options)
        return pool


def close_pools(alias: str) -> None:
    """Close every pool of ``alias``: idle connections now, checked-out ones when returned."""
    with _LOCK:
        doomed = [key for key in _POOLS if key[0] == alias]
        pools = [_POOLS.pop(key) for key in doomed]
    for pool in pools:
        pool.close()


class PooledDatabaseWrapper:
    """What the three ``DatabaseWrapper`` classes add to Django's own (put first in the
    bases): checkout in ``get_new_connection()``, return in ``_close()``."""

    #: The current checkout; ``self.connection`` is its driver connection.
    _pooled: PooledConnection | None = None
    alias: str
    settings_dict: dict[str, Any]
    connection: Any

    @property
    def pool(self) -> ConnectionPool | None:
        """Return this alias's dbapi-pool pool, or ``None`` when pooling is off."""
        return pool_for(self)

    def close_pool(self) -> None:
        """Close this alias's pools (before the test database is dropped or cloned)."""
        close_pools(self.alias)

    def pool_connect_overrides(self) -> dict[str, Any]:
        """Return connect keywords a pooled connection needs beyond Django's (none)."""
        return {}

    def get_connection_params(self) -> dict[str, Any]:
        """Return Django's connect keywords, without ``OPTIONS["pool"]``."""
        base: Any = super()
        saved = self.settings_dict
        if "pool" not in saved["OPTIONS"]:
            return base.get_connection_params()  # type: ignore[no-any-return]
        options = {key: value for key, value in saved["OPTIONS"].items() if key != "pool"}
        # Django's backends copy OPTIONS into the keywords (MySQL and SQLite would pass
        # ``pool`` to the driver; Django's PostgreSQL one refuses it without psycopg 3).
        self.settings_dict = {**saved, "OPTIONS": options}
        try:
            return base.get_connection_params()  # type: ignore[no-any-return]
        finally:
            self.settings_dict = saved

    def checkout(self, pool: ConnectionPool) -> Any:
        """Take a connection from ``pool`` for this wrapper; return the driver's own."""
        self._pooled = pool.get()
        return self._pooled.raw

    def _close(self) -> None:
        pooled = self._pooled
        if pooled is None:
            base: Any = super()
            base._close()
            return
        self._pooled = None
        # The connection may be lent to another thread as soon as it is back: this
        # wrapper must not touch it again, even inside an atomic block (Django's pool too).
        self.connection = None
        with self.wrap_database_errors:  # type: ignore[attr-defined]
            pooled.close()

    def close_if_health_check_failed(self) -> None:
        """Skip Django's check when pooled: dbapi-pool probes each checkout (as Django's
        pool does, which only returns healthy connections)."""
        if self._pooled is not None:
            return
        base: Any = super()
        base.close_if_health_check_failed()


class PoolClosingCreation:
    """Close the alias's pools before the test database is cloned or dropped (the server
    refuses to drop a database with sessions on it; Django's PostgreSQL backend does the
    same for its pool). Put first in the bases of a backend's ``DatabaseCreation``."""

    connection: Any

    def _clone_test_db(self, suffix: Any, verbosity: int, keepdb: bool = False) -> Any:
        self.connection.close_pool()
        base: Any = super()
        return base._clone_test_db(suffix, verbosity, keepdb)

    def _destroy_test_db(self, test_database_name: str, verbosity: int) -> Any:
        self.connection.close_pool()
        base: Any = super()
        return base._destroy_test_db(test_database_name, verbosity)


def _forget_inherited() -> None:
    """In a forked child, let go of the connections the parent's thread held.

    dbapi-pool starts every pool empty in the child; a connection checked out at the fork
    is disowned when it comes back (its socket is pointed at /dev/null, so the parent's
    session is never touched). Give those back now, so the child's next query connects.
    """
    from django.db import connections

    try:
        wrappers = connections.all(initialized_only=True)
    except Exception:  # Django not set up in this process
        return
    for wrapper in wrappers:
        pooled = getattr(wrapper, "_pooled", None)
        if isinstance(wrapper, PooledDatabaseWrapper) and pooled is not None:
            wrapper._pooled = None
            wrapper.connection = None
            try:
                pooled.close()
            except Exception:  # never break the child
                pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)
