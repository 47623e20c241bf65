"""SQLAlchemy-style database URLs: ``dialect+driver://user:password@host:port/database?k=v``."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ._drivers import SECRET_KWARGS, profile_named

__all__ = ["ParsedURL", "parse_url", "redact_url"]

# The driver each dialect names; the first of a dialect is its default (SQLAlchemy's too).
_DRIVERS = {
    "postgresql": "psycopg2",
    "postgresql+psycopg2": "psycopg2",
    "postgresql+psycopg": "psycopg",
    "postgresql+pg8000": "pg8000",
    "mysql": "MySQLdb",
    "mysql+mysqldb": "MySQLdb",
    "mysql+pymysql": "pymysql",
    "mariadb": "MySQLdb",
    "mariadb+mysqldb": "MySQLdb",
    "mariadb+pymysql": "pymysql",
    "sqlite": "sqlite3",
    "sqlite+pysqlite": "sqlite3",
}
_ALIASES = {"postgres": "postgresql"}


@dataclass(frozen=True)
class ParsedURL:
    """Hold what a URL says: the driver module's name and its connect keywords."""

    driver: str
    kwargs: dict[str, Any]

    def import_driver(self) -> ModuleType:
        """Import the driver module; say which extra to install if it is missing."""
        try:
            return importlib.import_module(self.driver)
        except ImportError as exc:
            raise ImportError(
                f"the database URL needs the {self.driver!r} driver, which is not installed "
                f"(pip install 'dbapi-pool[{self.driver.lower()}]' or the driver itself)"
            ) from exc


def _value(text: str) -> Any:
    """Turn a query-string value into an int or float when it is one (``connect_timeout=3``)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_url(url: str) -> ParsedURL:
    """Split a database URL into the driver's module name and its connect keywords."""
    if not isinstance(url, str) or "://" not in url:
        # Not echoed: a malformed URL may hold a password in a place redact_url can't see.
        raise ValueError("not a database URL (expected dialect+driver://user@host/database)")
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    dialect, plus, driver = scheme.partition("+")
    scheme = _ALIASES.get(dialect, dialect) + plus + driver
    module = _DRIVERS.get(scheme)
    if module is None:
        known = ", ".join(sorted(_DRIVERS))
        raise ValueError(f"unsupported database URL scheme {scheme!r} (known: {known})")
    profile = profile_named(module)
    keys = profile.url_keys
    if module == "sqlite3":
        path = rest.split("?", 1)[0]
        if not path.startswith("/") and path:
            raise ValueError("a sqlite URL is sqlite:///relative/path or sqlite:////absolute/path")
        kwargs: dict[str, Any] = {"database": unquote(path[1:]) or ":memory:"}
        query = rest.split("?", 1)[1] if "?" in rest else ""
    else:
        parts = urlsplit(f"//{rest}")
        kwargs = {}
        for part, value in (
            ("host", parts.hostname),
            ("port", parts.port),
            ("user", unquote(parts.username) if parts.username else None),
            ("password", unquote(parts.password) if parts.password is not None else None),
            ("database", unquote(parts.path.lstrip("/")) or None),
        ):
            if value is not None:
                kwargs[keys[part]] = value
        query = parts.query
    for key, value in parse_qsl(query, keep_blank_values=True):
        kwargs[key] = _value(value)
    return ParsedURL(module, kwargs)


_SECRET_QUERY = re.compile(
    r"([?&](?:" + "|".join(sorted(SECRET_KWARGS)) + r")=)[^&#]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """Return ``url`` with any password (``user:pw@`` or ``?password=``) replaced by ``***``."""
    url = _SECRET_QUERY.sub(r"\1***", url)
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, at, location = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***{at}{location}" if ":" in credentials else url
