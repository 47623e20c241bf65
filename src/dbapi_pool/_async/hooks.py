"""The coroutine lifecycle hooks of the async pool: ``configure`` and ``check`` awaited on
the loop.

A coroutine hook gets an :class:`~dbapi_pool._async.connection.AsyncPooledConnection`, the
object ``await pool.get()`` lends, so its queries run on the connection's own thread and
never block the loop. That connection is lent to the hook, not to a caller: its owner here
only detaches it when it is closed, dropped or cancelled, and the pool decides the rest
(a failed ``configure`` closes the connection, a failed ``check`` replaces it). When the
hook ends, the cursors it left open are closed and its transaction settled in the
connection's thread (``DriverPolicy.configured`` / ``checked``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from .._core import Entry
from .._policy import CheckRejected
from ..config import PoolConfig, is_coroutine_function
from ..errors import ConnectTimeout, PoolError
from .connection import AsyncPooledConnection
from .threads import ConnectionInfo

if TYPE_CHECKING:
    from .._drivers import DriverProfile
    from .._policy import DriverPolicy
    from .threads import ConnectionThread

__all__ = ["AsyncHook", "AsyncHooks", "configure_then", "run_check"]

#: A coroutine ``configure`` or ``check``: takes the async connection.
AsyncHook = Callable[[AsyncPooledConnection], Awaitable[object]]
#: A connect's outcome, called on the loop: ``(thread, ok, value)`` (``offload.py``).
_Outcome = Callable[["ConnectionThread", bool, Any], None]


class AsyncHooks:
    """Hold a pool's coroutine hooks (``configure``, ``check``: ``None`` when not set or
    plain) and stand in for the pool as the owner of a connection lent to one.

    The connection is not checked out: giving it back (``close()``, ``async with``) only
    ends the hook's use of it; a cancelled call or a dropped connection leaves it to the
    pool, which closes it (``configure``) or takes it back (``check``) once the thread's
    calls have returned (a thread runs its jobs in order).
    """

    __slots__ = ("_policy", "check", "configure", "name", "plain_configure", "profile")

    def __init__(self, name: str, profile: DriverProfile, policy: DriverPolicy) -> None:
        self.name = name
        self.profile = profile
        self._policy = policy
        self.configure = _coroutine(policy.configure_hook)
        self.check = _coroutine(policy.check_hook)
        #: Whether a plain ``configure`` runs in the thread, right after the connect.
        self.plain_configure = policy.configure_hook is not None and self.configure is None

    async def put(self, conn: AsyncPooledConnection) -> None:
        """End the hook's use of the connection (the pool keeps it)."""
        conn._release()

    def _cancelled_mid_call(self, entry: Entry, cursors: list[Any] | None) -> None:
        """Leave the connection to the pool (see the class docstring)."""

    def _abandon(self, entry: Entry) -> None:
        """Leave the connection to the pool (see the class docstring)."""


def _coroutine(hook: Callable[[Any], object] | None) -> AsyncHook | None:
    return hook if is_coroutine_function(hook) else None  # type: ignore[return-value]


class _HookedPool(Protocol):
    """What running a coroutine ``configure`` needs of its pool (``OffloadingPool``)."""

    name: str
    _loop: asyncio.AbstractEventLoop | None
    _fetches: set[asyncio.Task[None]]
    _hooks: AsyncHooks

    @property
    def config(self) -> PoolConfig: ...

    def _close_quietly(self, conn: Any, reason: str) -> None: ...


async def _lend_to_hook(
    hook: AsyncHook, owner: AsyncHooks, entry: Entry
) -> tuple[object, list[Any] | None]:
    """Await ``hook`` with an async connection over ``entry``; return what it returned and
    the driver cursors it left open."""
    conn = AsyncPooledConnection(owner, entry)
    try:
        verdict = await hook(conn)
    finally:
        cursors = conn._open_cursors()
        conn._release()
    return verdict, cursors


def configure_then(
    pool: _HookedPool, outcome: _Outcome, thread: ConnectionThread, ok: bool, value: Any
) -> None:
    """Take a connect's outcome on the loop: await the coroutine ``configure`` on the new
    connection before ``outcome`` gets it (in a task of its own, as ``connect_args``)."""
    if not ok or pool._loop is None:
        outcome(thread, ok, value)
        return
    task = pool._loop.create_task(_configure(pool, outcome, thread, value))
    pool._fetches.add(task)  # the loop keeps only a weak reference to a task
    task.add_done_callback(pool._fetches.discard)


async def _configure(
    pool: _HookedPool, outcome: _Outcome, thread: ConnectionThread, opened: tuple[Any, Any]
) -> None:
    """Await ``configure`` within ``connect_timeout``; if it fails, close the connection
    in its thread (after the hook's last call there), then report the failure to
    ``outcome`` as a failed connect."""
    limit = pool.config.connect_timeout
    conn = opened[0]
    reason = "failed_configure"
    try:
        await asyncio.wait_for(_configure_conn(pool._hooks, thread, conn), limit)
    except asyncio.TimeoutError:
        error: BaseException = ConnectTimeout(
            f"pool {pool.name!r}: configure took longer than connect_timeout={limit:g} s"
        )
    except asyncio.CancelledError:  # the loop is shutting down: free the slot
        error = PoolError(f"pool {pool.name!r}: configure cancelled")
        thread.call(partial(_failed, outcome, thread, error), pool._close_quietly, conn, reason)
        raise
    except Exception as exc:
        error = exc
    else:
        outcome(thread, True, opened)
        return
    thread.call(partial(_failed, outcome, thread, error), pool._close_quietly, conn, reason)


def _failed(
    outcome: _Outcome, thread: ConnectionThread, error: BaseException, ok: bool, _: Any
) -> None:
    """Report a failed ``configure`` once its connection is closed (a failed close is
    logged by ``_close_quietly``)."""
    outcome(thread, False, error)


async def _configure_conn(hooks: AsyncHooks, thread: ConnectionThread, conn: Any) -> None:
    """Await a coroutine ``configure`` on a new connection, then close the cursors it left
    open and commit its transaction in the connection's thread; raise if either fails."""
    assert hooks.configure is not None
    # An entry only to carry the connection and its thread: the core never sees it.
    entry = Entry(conn, 0.0, 0.0)
    entry.info = ConnectionInfo(thread, None)
    _, cursors = await _lend_to_hook(hooks.configure, hooks, entry)
    await thread.submit(hooks._policy.configured, conn, cursors)


async def run_check(hooks: AsyncHooks, entry: Entry) -> None:
    """Await a coroutine ``check`` on an idle connection (taken out for the checkout);
    raise if it rejects it, else settle what it left open in the connection's thread."""
    assert hooks.check is not None
    verdict, cursors = await _lend_to_hook(hooks.check, hooks, entry)
    if verdict is False:
        raise CheckRejected("the check returned False")
    policy = hooks._policy
    if cursors is not None or policy.needs_check_settled(entry.conn):
        await entry.info.thread.submit(policy.checked, entry.conn, cursors)
