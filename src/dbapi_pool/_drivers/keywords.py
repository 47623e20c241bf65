"""Check, at construction, the keywords a pool will pass to the driver's ``connect()``.

A keyword that is neither a pool setting nor one the driver takes (``max_sise=3``) used to
fail only at the first checkout, inside the driver, or not at all (libpq ignores nothing,
but a driver taking ``**kwargs`` may). Where the driver's signature or its profile says
what it takes, such a keyword is a ``TypeError`` naming it; where nothing can tell, a
keyword close to a pool setting's name gets a warning.
"""

from __future__ import annotations

import difflib
import inspect
import os
import sys
import warnings
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from .base import DriverProfile

__all__ = ["check_connect_kwargs"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _signature_names(connect: Any) -> tuple[frozenset[str], bool] | None:
    """Return the keywords ``connect`` names and whether it takes ``**kwargs`` too, or
    ``None`` when its signature cannot be read (a C function without a text signature)."""
    try:
        parameters = inspect.signature(connect).parameters.values()
    except (TypeError, ValueError):
        return None
    named = frozenset(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    return named, open_ended


def _sort(module: Any, profile: DriverProfile, keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``keys`` into those the driver surely refuses and those nothing can check."""
    signature = _signature_names(module.connect)
    named, open_ended = signature if signature is not None else (frozenset(), True)
    refused: list[str] = []
    unchecked: list[str] = []
    for key in keys:
        if key in named:
            continue
        verdict = None
        if profile.takes_keyword is not None:
            try:
                verdict = profile.takes_keyword(key)
            except Exception:  # a driver version the profile does not know: can't tell
                verdict = None
        elif not open_ended:
            verdict = False
        if verdict is False:
            refused.append(key)
        elif verdict is None:
            unchecked.append(key)
    return refused, unchecked


def _close_setting(key: str, settings: Collection[str]) -> str | None:
    matches = difflib.get_close_matches(key, list(settings), n=1, cutoff=0.75)
    return matches[0] if matches else None


def _caller_stacklevel() -> int:
    """Return the ``stacklevel`` of the first frame outside this package (user code)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def check_connect_kwargs(
    module: Any,
    profile: DriverProfile,
    kwargs: Mapping[str, Any],
    pool: str,
    settings: Collection[str],
) -> None:
    """Refuse the keywords ``connect()`` cannot take; warn about unchecked ones that look
    like a misspelt pool setting (``settings``: the pool's setting names)."""
    refused, unchecked = _sort(module, profile, kwargs)
    if refused:
        hints = []
        for key in refused:
            close = _close_setting(key, settings)
            hints.append(f"{key} (did you mean the pool setting {close}?)" if close else key)
        raise TypeError(
            f"pool {pool!r}: {profile.name}.connect() does not take "
            f"{', '.join(hints)}, and no pool setting has that name"
        )
    for key in unchecked:
        close = _close_setting(key, settings)
        if close is not None:
            warnings.warn(
                f"pool {pool!r}: {key} is not a pool setting (did you mean {close}?); it "
                f"is passed to {profile.name}.connect() as is",
                UserWarning,
                stacklevel=_caller_stacklevel(),
            )
