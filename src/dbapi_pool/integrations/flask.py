"""A Flask extension that keeps one :class:`~dbapi_pool.ConnectionPool` per process.

::

    from dbapi_pool.integrations.flask import FlaskPool

    db = FlaskPool(psycopg2, "host=127.0.0.1 dbname=test", max_size=8)
    # or FlaskPool(url="postgresql+psycopg2://user@host/db", max_size=8),
    # or FlaskPool(factory=make_pool): a function returning a ConnectionPool

    def create_app() -> Flask:          # the app-factory pattern
        app = Flask(__name__)
        db.init_app(app)                # or FlaskPool(app, psycopg2, dsn, ...) at once
        return app

    @app.get("/item/<int:item_id>")
    def item(item_id):
        return {"row": db.fetchone("SELECT ...", (item_id,))}

What it does for you:

- **One pool per process, made on first use**: ``db.pool`` makes the pool in the process
  that first uses it, so each worker of a pre-fork server (gunicorn, uWSGI) gets its own
  after the fork; a process forked after the pool was made makes a new one (the parent's
  connections are never used by two processes). Under gevent, make it after the
  monkey-patching, as a request or gunicorn's ``post_worker_init`` does.
- **Connections per checkout**: each ``db.connection()`` or shortcut (``db.execute``,
  ``fetchone``, ``fetchall``, ``fetchval``) checks one out and gives it back at once. No
  connection is bound to the request or the app context: ``teardown_appcontext`` closes
  nothing.
- **Checkouts named by route**: every checkout made during a request is tagged with its
  URL rule (``/item/<int:item_id>``; the path when no rule matched), as shown by
  ``db.pool.holders()`` and in ``PoolTimeout`` messages (``tag_requests=False`` turns it
  off).
- **Closed at process exit**: :meth:`FlaskPool.close` is registered with :mod:`atexit`;
  call it yourself where the server has a hook (gunicorn's ``worker_exit``).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from flask import Flask, g, request

from dbapi_pool import ConnectionPool, Holder, PooledConnection, PoolStats, checkout_tag
from dbapi_pool.holders import skip_in_sites

__all__ = ["FlaskPool"]

#: ``app.extensions`` key: the list of FlaskPools registered on the app.
EXTENSION = "dbapi_pool"


class FlaskPool:
    """Hold a pool's settings and make the :class:`~dbapi_pool.ConnectionPool` lazily, in
    each process, for one or more Flask apps.

    Give it exactly one source: the driver module and its ``connect()`` arguments,
    ``url=`` (as ``ConnectionPool.from_url``), or ``factory=`` (a function returning a
    ``ConnectionPool``, called in each process; no other keywords then). Other keywords
    are the pool's settings. A Flask app as first argument is passed to :meth:`init_app`.
    """

    def __init__(
        self,
        *args: Any,
        url: str | None = None,
        factory: Callable[[], ConnectionPool] | None = None,
        tag_requests: bool = True,
        **settings: Any,
    ) -> None:
        app = None
        if args and isinstance(args[0], Flask):
            app, args = args[0], args[1:]
        if (bool(args), url is not None, factory is not None).count(True) != 1:
            raise TypeError(
                "FlaskPool needs one of: a driver module (and its connect() arguments),"
                " url=, or factory="
            )
        if factory is not None and settings:
            raise TypeError(f"FlaskPool(factory=...) takes no pool settings: {sorted(settings)}")
        self._args = args
        self._url = url
        self._factory = factory
        self._settings = settings
        self._tag_requests = tag_requests
        self._token_key = f"_dbapi_pool_tag_{id(self)}"
        self._pool: ConnectionPool | None = None
        self._pid = 0  # the process that made self._pool
        self._locks: dict[int, Any] = {}  # by pid: a child never waits on a copied lock
        atexit.register(self.close)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: tag each request's checkouts with its route. Refuses a
        second registration of this FlaskPool on the same app (``RuntimeError``)."""
        registered: list[FlaskPool] = app.extensions.setdefault(EXTENSION, [])
        if any(pool is self for pool in registered):
            raise RuntimeError(
                f"this FlaskPool is already registered on the Flask app {app.name!r}:"
                " call init_app() once per app"
            )
        registered.append(self)
        if self._tag_requests:
            app.before_request(self._tag_request)
            app.teardown_request(self._untag_request)

    @property
    def pool(self) -> ConnectionPool:
        """Return this process's pool, making it on the first use in the process."""
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        pid = os.getpid()
        # setdefault is atomic: two threads racing here share one lock. The lock is made
        # now, not at import, so that it is gevent's once gevent has patched threading.
        with self._locks.setdefault(pid, threading.Lock()):
            if self._pool is None or self._pid != pid:
                self._pool = self._make_pool()
                self._pid = pid
            return self._pool

    def _make_pool(self) -> ConnectionPool:
        if self._factory is not None:
            pool = self._factory()
            if not isinstance(pool, ConnectionPool):
                raise TypeError(
                    f"FlaskPool's factory must return a ConnectionPool, got {type(pool).__name__}"
                )
            return pool
        if self._url is not None:
            return ConnectionPool.from_url(self._url, **self._settings)
        return ConnectionPool(*self._args, **self._settings)

    def close(self) -> None:
        """Close this process's pool, if it made one (at exit: registered with atexit).

        Later uses get ``PoolClosed``. A pool made by a parent process is left alone.
        """
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            pool.close()

    # -- request tagging -------------------------------------------------------------------

    def _tag_request(self) -> None:
        rule = request.url_rule
        tag = rule.rule if rule is not None else request.path
        setattr(g, self._token_key, checkout_tag.set(tag))

    def _untag_request(self, exc: BaseException | None) -> None:
        token = g.pop(self._token_key, None)
        if token is not None:
            try:
                checkout_tag.reset(token)
            except ValueError:  # set in another context (an async view's copy): clear
                checkout_tag.set(None)

    # -- the pool's API, through this process's pool ----------------------------------------

    def connection(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> AbstractContextManager[PooledConnection]:
        """Check out a connection for a ``with`` block (``ConnectionPool.connection``)."""
        return self.pool.connection(timeout, tag=tag)

    def execute(self, sql: str, params: Any = None, *, tag: str | None = None) -> int:
        """Run one statement and commit; return the driver's ``rowcount``."""
        return self.pool.execute(sql, params, tag=tag)

    def fetchone(self, sql: str, params: Any = None, *, tag: str | None = None) -> Any:
        """Run one query; return its first row, or ``None``."""
        return self.pool.fetchone(sql, params, tag=tag)

    def fetchall(self, sql: str, params: Any = None, *, tag: str | None = None) -> list[Any]:
        """Run one query; return the list of its rows."""
        return self.pool.fetchall(sql, params, tag=tag)

    def fetchval(self, sql: str, params: Any = None, *, tag: str | None = None) -> Any:
        """Run one query; return the first column of its first row, or ``None``."""
        return self.pool.fetchval(sql, params, tag=tag)

    def stats(self) -> PoolStats:
        """Return this process's pool statistics."""
        return self.pool.stats()

    def holders(self) -> list[Holder]:
        """Return who holds this process's pool's connections."""
        return self.pool.holders()

    def __repr__(self) -> str:
        pool = self._pool if self._pid == os.getpid() else None
        return f"<FlaskPool {pool!r}>" if pool is not None else "<FlaskPool (no pool yet)>"


# A checkout's site is the application's line that called the shortcut, not these.
skip_in_sites(FlaskPool.execute, FlaskPool.fetchone, FlaskPool.fetchall, FlaskPool.fetchval)
