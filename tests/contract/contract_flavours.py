"""Drive every pool flavour through one blocking interface, so the contract is written once.

The threaded ``ConnectionPool`` already has it. ``AsyncFacade`` runs an
``AsyncConnectionPool`` on an event loop of its own, in a background thread, and turns each
call into a blocking one: tests may then call it from several threads at once, exactly as
they call the threaded pool.

Green flavours run in a subprocess of their own (tests/green/run_contract.py), named by the
``DBAPI_POOL_CONTRACT_FLAVOUR`` environment variable: ``gevent-patched`` and
``eventlet-patched`` after monkey-patching (the tests' threads are then green threads),
``gevent`` and ``eventlet`` without it (``RUNTIME`` then spawns and sleeps the green way).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from dbapi_pool import AsyncConnectionPool, AsyncCursor, AsyncPooledConnection

T = TypeVar("T")

#: The flavour of a green subprocess run, or None in the ordinary run.
GREEN_FLAVOUR = os.environ.get("DBAPI_POOL_CONTRACT_FLAVOUR") or None


class Runtime:
    """Start and join concurrent callers, and sleep, the way the flavour under test does."""

    def __init__(self, flavour: str | None) -> None:
        self.flavour = flavour

    def spawn(self, fn: Any) -> Any:
        if self.flavour == "gevent":
            import gevent

            return gevent.spawn(fn)
        if self.flavour == "eventlet":
            import eventlet

            return eventlet.spawn(fn)
        thread = threading.Thread(target=fn, daemon=True)
        thread.start()
        return thread

    def join(self, handle: Any, timeout: float) -> None:
        if self.flavour == "eventlet":
            import eventlet

            with eventlet.Timeout(timeout, False):
                handle.wait()
        else:
            handle.join(timeout)

    def sleep(self, seconds: float) -> None:
        if self.flavour == "gevent":
            import gevent

            gevent.sleep(seconds)
        elif self.flavour == "eventlet":
            import eventlet

            eventlet.sleep(seconds)
        else:
            time.sleep(seconds)


RUNTIME = Runtime(GREEN_FLAVOUR)

#: Generous: these machines are shared and noisy.
CALL_TIMEOUT = 30.0


class LoopThread:
    """Run an event loop in a daemon thread until stopped."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(CALL_TIMEOUT)
        self.loop.close()


class FacadeCursor:
    def __init__(self, runner: LoopThread, inner: AsyncCursor) -> None:
        self._runner = runner
        self.inner = inner

    def execute(self, sql: str, params: Any = None) -> FacadeCursor:
        self._runner.run(self.inner.execute(sql, params))
        return self

    def fetchone(self) -> Any:
        return self._runner.run(self.inner.fetchone())

    def fetchall(self) -> Any:
        return self._runner.run(self.inner.fetchall())


class FacadeConnection:
    def __init__(self, runner: LoopThread, inner: AsyncPooledConnection) -> None:
        self._runner = runner
        self.inner = inner

    def cursor(self) -> FacadeCursor:
        return FacadeCursor(self._runner, self.inner.cursor())

    def commit(self) -> None:
        self._runner.run(self.inner.commit())

    def rollback(self) -> None:
        self._runner.run(self.inner.rollback())

    def close(self) -> None:
        self._runner.run(self.inner.close())

    @property
    def raw(self) -> Any:
        return self.inner.raw

    @property
    def released(self) -> bool:
        return self.inner.released

    def __repr__(self) -> str:
        return repr(self.inner)


class AsyncFacade:
    """Present an AsyncConnectionPool with the blocking ConnectionPool's interface."""

    def __init__(self, runner: LoopThread, pool: AsyncConnectionPool) -> None:
        self._runner = runner
        self.inner = pool
        runner.run(pool.open())

    def get(self, timeout: float | None = None, *, tag: str | None = None) -> FacadeConnection:
        return FacadeConnection(self._runner, self._runner.run(self.inner.get(timeout, tag=tag)))

    def get_nowait(self) -> FacadeConnection:
        return FacadeConnection(self._runner, self._runner.run(self.inner.get_nowait()))

    def put(self, conn: Any) -> None:
        inner = conn.inner if isinstance(conn, FacadeConnection) else conn
        self._runner.run(self.inner.put(inner))

    @contextmanager
    def connection(
        self, timeout: float | None = None, *, tag: str | None = None
    ) -> Iterator[FacadeConnection]:
        manager = self.inner.connection(timeout, tag=tag)
        conn = FacadeConnection(self._runner, self._runner.run(manager.__aenter__()))
        try:
            yield conn
        except BaseException as exc:
            self._runner.run(manager.__aexit__(type(exc), exc, exc.__traceback__))
            raise
        else:
            self._runner.run(manager.__aexit__(None, None, None))

    def close(self) -> None:
        self._runner.run(self.inner.close())

    def stats(self) -> Any:
        return self.inner.stats()

    def holders(self) -> Any:
        return self.inner.holders()

    def add_listener(self, listener: Any) -> None:
        self.inner.add_listener(listener)

    def remove_listener(self, listener: Any) -> None:
        self.inner.remove_listener(listener)

    @property
    def closed(self) -> bool:
        return self.inner.closed

    @property
    def config(self) -> Any:
        return self.inner.config

    def __enter__(self) -> AsyncFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self.inner)
