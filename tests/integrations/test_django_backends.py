"""The Django backends (``dbapi_pool.django.*``) under Django's own test runner, for real.

Each case runs ``python -m django test`` in a subprocess on the small project in
``django_project/`` (its tests: ``django_project/shop/tests.py``) against PostgreSQL
(psycopg 3 and psycopg2), MariaDB (mysqlclient, and PyMySQL installed as MySQLdb) or
SQLite, and checks that the test database was created, used and dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).parent / "django_project"
SRC = Path(__file__).parents[2] / "src"

#: case: (engine, the driver module Django must end up using)
CASES = {
    "psycopg": ("postgresql", "psycopg"),
    "psycopg2": ("postgresql", "psycopg2"),
    "mysqlclient": ("mysql", "MySQLdb"),
    "pymysql": ("mysql", "pymysql"),
    "sqlite3": ("sqlite3", "sqlite3"),
}

CHECK_SCRIPT = """
import django
from django.core.exceptions import ImproperlyConfigured
django.setup()
from django.db import connection
try:
    connection.ensure_connection()
except ImproperlyConfigured as error:
    print("ImproperlyConfigured:", error)
else:
    print("connected")
"""


def run(case: str, tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python args`` in the test project with the backend of ``case``."""
    engine, driver = CASES[case]
    environ = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(PROJECT)]),
        "DJANGO_SETTINGS_MODULE": "settings",
        "DBAPI_POOL_DJANGO_ENGINE": engine,
        "DBAPI_POOL_DJANGO_DRIVER": driver,
        "DBAPI_POOL_DJANGO_SQLITE_DIR": str(tmp_path),
        "DBAPI_POOL_DJANGO_REPORT": str(tmp_path / "report.json"),
        **env,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=240,
    )


def database_exists(case: str, name: str) -> bool:
    """Tell whether the server (or the file system) has the database ``name``."""
    engine, _ = CASES[case]
    if engine == "sqlite3":
        return Path(name).exists()
    conn: Any
    if engine == "postgresql":
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
        sql = "SELECT count(*) FROM pg_database WHERE datname = %s"
    else:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", database="test")
        sql = "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s"
    try:
        cursor = conn.cursor()
        cursor.execute(sql, (name,))
        return bool(cursor.fetchone()[0])
    finally:
        conn.close()


def improperly_configured(case: str, tmp_path: Path, **env: str) -> str:
    """Connect with a bad configuration; return what ImproperlyConfigured said."""
    result = run(case, tmp_path, ["-c", CHECK_SCRIPT], **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ImproperlyConfigured: "), result.stdout
    return result.stdout.removeprefix("ImproperlyConfigured: ").strip()


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("case", list(CASES))
def test_django_test_runner_creates_uses_and_drops_the_test_database(
    case: str, tmp_path: Path
) -> None:
    engine, _ = CASES[case]
    name = f"test_dbapi_pool_{uuid.uuid4().hex[:8]}"
    if engine == "sqlite3":
        name = str(tmp_path / f"{name}.sqlite3")
    args = ["-m", "django", "test", "shop", "-v", "2", "--noinput"]
    result = run(case, tmp_path, args, DBAPI_POOL_DJANGO_TEST_NAME=name)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Ran 10 tests" in output, output
    assert "Creating test database for alias 'default'" in output, output
    assert "Destroying test database for alias 'default'" in output, output
    assert json.loads((tmp_path / "report.json").read_text()) == {"database": name}
    assert not database_exists(case, name)


@pytest.mark.parametrize("case", ["sqlite3", "psycopg"])
def test_an_unknown_pool_setting_is_refused_naming_it(case: str, tmp_path: Path) -> None:
    message = improperly_configured(case, tmp_path, DBAPI_POOL_DJANGO_POOL='{"max_sise": 4}')
    assert message.startswith(
        "settings.DATABASES['default']['OPTIONS']['pool']: unknown dbapi-pool setting "
        "'max_sise' (known: "
    ), message
    assert "max_size" in message


@pytest.mark.parametrize("case", ["sqlite3", "psycopg"])
def test_pooling_refuses_persistent_connections(case: str, tmp_path: Path) -> None:
    message = improperly_configured(case, tmp_path, DBAPI_POOL_DJANGO_MAX_AGE="60")
    assert message == "Pooling doesn't support persistent connections."


def test_connect_args_belong_to_django(tmp_path: Path) -> None:
    message = improperly_configured(
        "sqlite3", tmp_path, DBAPI_POOL_DJANGO_POOL='{"connect_args": null}'
    )
    assert "'connect_args' is set by Django's backend" in message


def test_a_bad_pool_value_is_improperly_configured(tmp_path: Path) -> None:
    message = improperly_configured("sqlite3", tmp_path, DBAPI_POOL_DJANGO_POOL='{"max_size": 0}')
    assert message.startswith("settings.DATABASES['default']['OPTIONS']['pool']: "), message
    assert "max_size" in message


def test_pool_true_uses_the_defaults(tmp_path: Path) -> None:
    result = run(
        "sqlite3",
        tmp_path,
        ["-c", CHECK_SCRIPT + "print(connection.pool.config.max_size)"],
        DBAPI_POOL_DJANGO_POOL="true",
    )
    assert result.stdout.split() == ["connected", "4"], result.stdout + result.stderr


@pytest.mark.parametrize(("health_checks", "pre_ping"), [("1", True), ("0", False)])
def test_conn_health_checks_pings_every_checkout(
    health_checks: str, pre_ping: bool, tmp_path: Path
) -> None:
    result = run(
        "sqlite3",
        tmp_path,
        ["-c", CHECK_SCRIPT + "print(connection.pool.config.pre_ping)"],
        DBAPI_POOL_DJANGO_HEALTH_CHECKS=health_checks,
    )
    assert result.stdout.split() == ["connected", str(pre_ping)], result.stdout + result.stderr
