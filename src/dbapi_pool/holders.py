"""Name your checkouts: the tag shown by ``pool.holders()`` and in ``PoolTimeout`` messages.

A framework sets :data:`checkout_tag` (a context variable) per request or job, and every
checkout made meanwhile, in that thread, green thread or asyncio task, carries it::

    with dbapi_pool.tagged("GET /report"):
        handle_request()

A ``tag=`` given to ``get()`` or ``connection()`` wins over it.

A layer that calls ``get()`` for its users (a framework's pool class, a helper of the
application's) names its functions with :func:`skip_in_sites`, so that a holder's site
is its caller's line, not the layer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._core import Holder
from ._core.holders import skip_in_sites

__all__ = ["Holder", "checkout_tag", "skip_in_sites", "tagged"]

#: The tag of the checkouts made in the current context (``None``: untagged).
checkout_tag: ContextVar[str | None] = ContextVar("dbapi_pool_checkout_tag", default=None)


@contextmanager
def tagged(tag: str | None) -> Iterator[None]:
    """Tag the checkouts made inside the block (restoring the previous tag after it)."""
    if tag is not None and not isinstance(tag, str):
        raise TypeError(f"a checkout tag must be a string or None, got {type(tag).__name__}")
    token = checkout_tag.set(tag)
    try:
        yield
    finally:
        checkout_tag.reset(token)
