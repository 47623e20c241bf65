"""The PostgreSQL drivers under fault test, and how to point each one at a server."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import pytest

from .support import scalar

__all__ = ["PG_DRIVERS", "load", "pg_kwargs", "pg_params", "pid_of"]

PG_DRIVERS = ("psycopg2", "psycopg", "pg8000")


def load(name: str) -> Any:
    """Import a driver, failing (never skipping) the test if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"driver {name!r} is not installed: {exc}", pytrace=False)


def pg_params(*names: str) -> list[Any]:
    """Return ``pytest.param``s for these PostgreSQL drivers (default: all), marked."""
    return [pytest.param(n, id=n, marks=pytest.mark.postgres) for n in names or PG_DRIVERS]


def pg_kwargs(
    driver: str, server: Mapping[str, Any], app_name: str, **extra: Any
) -> dict[str, Any]:
    """Return ``connect()`` keywords for ``driver`` from libpq-style ``server`` keywords."""
    kwargs = {**server, "application_name": app_name, **extra}
    if driver == "pg8000":
        kwargs["database"] = kwargs.pop("dbname")
        options = kwargs.pop("options", None)
        if options is not None:  # "-c a=b -c c=d" -> startup_params
            pairs = [opt.split("=", 1) for opt in options.replace("-c", " ").split()]
            kwargs["startup_params"] = {key: value for key, value in pairs}
    return kwargs


def pid_of(conn: Any) -> int:
    """Return the backend pid of a pooled connection."""
    return int(scalar(conn, "SELECT pg_backend_pid()"))
