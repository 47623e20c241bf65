"""Who holds the pool's connections: the snapshot behind ``pool.holders()`` and the
holders named in a ``PoolTimeout``.

The front-ends note, at each checkout, the holder (a thread's ident, or a task's or green
thread's label), the code object and line that called ``get()``, and the caller's tag:
slot stores, no allocation for threads. Names are resolved here, only when asked.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .entries import IN_USE, Entry

__all__ = ["WRAPPERS", "Holder", "describe", "holders_of", "skip_in_sites"]

#: Holders named in a ``PoolTimeout`` message (the oldest first).
NAMED_IN_TIMEOUT = 3

#: The ids of the code objects of the pool's own wrappers around ``get()`` (``connection()``,
#: contextlib's ``__enter__``, the drop-in's ``get()``...): a checkout's site is the first
#: frame above ``get()`` that is none of these, found with one set lookup per frame.
WRAPPERS: set[int] = set()


def skip_in_sites(*functions: Any) -> None:
    """Have checkout sites skip these functions' frames (the pool's own wrappers, a
    framework's layers; with those they wrap, through ``__wrapped__``); kept
    by ``id()`` of their code objects (which live as long as the module), since hashing a
    code object hashes its whole contents."""
    for function in functions:
        # A decorated function's frames are the wrapper's and the wrapped one's: skip both.
        while function is not None:
            code = getattr(function, "__code__", None)
            if code is not None:
                WRAPPERS.add(id(code))
            function = getattr(function, "__wrapped__", None)


@dataclass(frozen=True)
class Holder:
    """One checked-out connection: for how long, by whom, from where, and its tag."""

    #: The connection's serial number in the process (``#3`` in messages).
    connection: int
    #: Seconds since it was checked out.
    held_for: float
    #: ``"thread 'name'"``, ``"task 'name'"`` or ``"greenlet 'name'"``; ``"?"`` if unknown.
    holder: str
    #: ``"path/to/file.py:42 in function"`` that called ``get()``, ``"?"`` if unknown.
    site: str
    #: The caller's tag (``pool.connection(tag=...)`` or ``dbapi_pool.checkout_tag``).
    tag: str | None

    def __str__(self) -> str:
        tag = "" if self.tag is None else f" [{self.tag}]"
        return f"#{self.connection} held {self.held_for:.3f} s by {self.holder} at {self.site}{tag}"


def holders_of(entries: Iterable[Entry], now: float, tasks: bool = False) -> list[Holder]:
    """Describe the entries in use, the longest held first (``tasks``: the holders are
    asyncio task names)."""
    lent = sorted((e for e in entries if e.state is IN_USE), key=lambda e: e.checked_out_at)
    if not lent:
        return []
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return [
        Holder(
            e.serial,
            max(0.0, now - e.checked_out_at),
            f"task {e.holder!r}" if tasks and e.holder is not None else _name(e.holder, names),
            _site(e),
            e.tag,
        )
        for e in lent
    ]


def describe(holders: list[Holder]) -> str:
    """Name the oldest holders for a message (empty if none)."""
    if not holders:
        return ""
    shown = "; ".join(str(h) for h in holders[:NAMED_IN_TIMEOUT])
    more = len(holders) - NAMED_IN_TIMEOUT
    return f"; held by {shown}" + (f"; and {more} more" if more > 0 else "")


def _name(holder: Any, names: dict[Any, str]) -> str:
    if holder is None:
        return "?"
    if not isinstance(holder, int):  # already a label: "task 'x'", "greenlet 'y'"
        return str(holder)
    name = names.get(holder)
    return f"thread {name!r}" if name is not None else f"thread {holder}"


def _site(entry: Entry) -> str:
    code = entry.site
    if code is None:
        return "?"
    line = next((line for start, end, line in code.co_lines() if start <= entry.lasti < end), None)
    return f"{code.co_filename}:{line if line is not None else '?'} in {code.co_name}"
