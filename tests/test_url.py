"""Database URLs become a driver module name and its connect keywords."""

from __future__ import annotations

from typing import Any

import pytest

from dbapi_pool.url import parse_url, redact_url


@pytest.mark.parametrize(
    ("url", "driver", "kwargs"),
    [
        (
            "postgresql://u:p%40ss@db.local:5433/app",
            "psycopg2",
            {"host": "db.local", "port": 5433, "user": "u", "password": "p@ss", "dbname": "app"},
        ),
        ("postgresql+psycopg://u@h/app", "psycopg", {"host": "h", "user": "u", "dbname": "app"}),
        ("postgres+psycopg2://h/app", "psycopg2", {"host": "h", "dbname": "app"}),
        ("postgresql+pg8000://u@h/app", "pg8000", {"host": "h", "user": "u", "database": "app"}),
        (
            "mysql+mysqldb://root:pw@127.0.0.1:3306/test",
            "MySQLdb",
            {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": "pw", "db": "test"},
        ),
        (
            "mysql+pymysql://root@h/test?connect_timeout=3&charset=utf8mb4",
            "pymysql",
            {
                "host": "h",
                "user": "root",
                "database": "test",
                "connect_timeout": 3,
                "charset": "utf8mb4",
            },
        ),
        ("sqlite:///rel/app.db", "sqlite3", {"database": "rel/app.db"}),
        ("sqlite:////abs/app.db", "sqlite3", {"database": "/abs/app.db"}),
        ("sqlite://", "sqlite3", {"database": ":memory:"}),
        (
            "postgresql:///test?host=/var/run/postgresql",
            "psycopg2",
            {"dbname": "test", "host": "/var/run/postgresql"},
        ),
    ],
)
def test_url_gives_driver_and_keywords(url: str, driver: str, kwargs: dict[str, Any]) -> None:
    parsed = parse_url(url)
    assert (parsed.driver, parsed.kwargs) == (driver, kwargs)


def test_unknown_scheme_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme 'oracle'.*sqlite"):
        parse_url("oracle://u:secret@h/x")


def test_not_a_url_message_hides_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        parse_url("u:secret@h")
    assert "secret" not in str(caught.value)


def test_redact_url_hides_only_the_password() -> None:
    assert redact_url("mysql://root:pw@h/db") == "mysql://root:***@h/db"
    assert redact_url("mysql://root@h/db") == "mysql://root@h/db"
    assert redact_url("pg://h/db?sslmode=x&password=pw&passwd=pw2") == (
        "pg://h/db?sslmode=x&password=***&passwd=***"
    )


def test_missing_driver_names_the_extra() -> None:
    parsed = parse_url("postgresql+psycopg2://h/db")
    object.__setattr__(parsed, "driver", "no_such_driver_module")
    with pytest.raises(ImportError, match="no_such_driver_module"):
        parsed.import_driver()
