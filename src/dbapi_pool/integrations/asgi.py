"""A lifespan handler that opens an ``AsyncConnectionPool`` at startup and closes it at
shutdown, for Starlette, FastAPI and any ASGI framework taking a lifespan context::

    from dbapi_pool import AsyncConnectionPool
    from dbapi_pool.integrations.asgi import pool_lifespan

    def make_pool() -> AsyncConnectionPool:
        return AsyncConnectionPool(psycopg2, dsn, max_size=8)

    app = Starlette(routes=routes, lifespan=pool_lifespan(make_pool))
    # FastAPI(lifespan=pool_lifespan(make_pool)) alike

    async def item(request):
        row = await request.state.pool.fetchone("SELECT ...", (1,))

The pool reaches the routes as lifespan state (``request.state.pool``; ``state_key``
names it). Pass a factory (a callable returning the pool, or a coroutine function) rather
than a pool: the pool is then made in the server's running loop, and an application
started twice (one test client after another) gets a fresh pool each time; a pool given
as is serves one start only (a closed pool does not open again).

An ``AsyncDatabaseConnector`` is accepted too: its pools open on first use, and all of
them are closed at shutdown. To add state of your own, enter the handler inside yours::

    @asynccontextmanager
    async def lifespan(app):
        async with pool_lifespan(make_pool)(app) as state:
            yield {**state, "registry": make_registry(state["pool"])}
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

from dbapi_pool import AsyncConnectionPool, AsyncDatabaseConnector

__all__ = ["pool_lifespan"]

AsyncPoolLike: TypeAlias = "AsyncConnectionPool | AsyncDatabaseConnector"
#: A pool, or what makes one: a function returning it (or a coroutine function).
PoolOrFactory: TypeAlias = "AsyncPoolLike | Callable[[], AsyncPoolLike | Awaitable[AsyncPoolLike]]"
#: What Starlette's and FastAPI's ``lifespan=`` take.
Lifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]
_POOLS = (AsyncConnectionPool, AsyncDatabaseConnector)


def pool_lifespan(
    pool_or_factory: PoolOrFactory,
    *,
    state_key: str = "pool",
    wait: bool = True,
    timeout: float = 30.0,
) -> Lifespan:
    """Return a lifespan handler (``lifespan=`` of Starlette or FastAPI) that opens the
    pool at startup, yields ``{state_key: pool}`` as the lifespan state, and closes it at
    shutdown, or when the startup fails (the pool's own open included).

    ``wait``: when the pool has a ``min_size``, startup waits until that many connections
    are open (``await pool.open(wait=True, timeout=timeout)``) and fails with
    ``PoolTimeout`` after ``timeout`` seconds: a server that cannot reach its database
    does not start. ``wait=False`` starts at once and lets the pool retry meanwhile.
    """
    if not isinstance(state_key, str):
        raise TypeError(f"state_key must be a string, got {type(state_key).__name__}")
    if not isinstance(pool_or_factory, _POOLS) and not callable(pool_or_factory):
        raise TypeError(
            "pool_lifespan() takes an AsyncConnectionPool, an AsyncDatabaseConnector"
            f" or a function returning one, got {type(pool_or_factory).__name__}"
        )

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        pool = await _make(pool_or_factory)
        try:
            if isinstance(pool, AsyncConnectionPool):
                await pool.open(wait=wait and pool.config.min_size > 0, timeout=timeout)
            yield {state_key: pool}
        finally:
            await pool.close()

    return lifespan


async def _make(pool_or_factory: PoolOrFactory) -> AsyncPoolLike:
    """Return the pool, calling (and awaiting) the factory if given one."""
    if isinstance(pool_or_factory, _POOLS):
        return pool_or_factory
    made = pool_or_factory()
    if inspect.isawaitable(made):
        made = await made
    if not isinstance(made, _POOLS):
        raise TypeError(
            "pool_lifespan()'s factory must return an AsyncConnectionPool or an"
            f" AsyncDatabaseConnector, got {type(made).__name__}"
        )
    return made
