"""Settings of the small Django project the Django backend tests run (in a subprocess).

The environment picks the backend: ``DBAPI_POOL_DJANGO_ENGINE`` (postgresql, mysql or
sqlite3), ``DBAPI_POOL_DJANGO_DRIVER`` (psycopg2 hides psycopg, so that Django picks
psycopg2 as when psycopg is not installed; pymysql installs PyMySQL as MySQLdb),
``DBAPI_POOL_DJANGO_POOL`` (JSON: ``true`` or the dbapi-pool settings),
``DBAPI_POOL_DJANGO_TEST_NAME``, ``DBAPI_POOL_DJANGO_MAX_AGE`` (``CONN_MAX_AGE``) and
``DBAPI_POOL_DJANGO_HEALTH_CHECKS`` (``1``: ``CONN_HEALTH_CHECKS``).
"""

import json
import os
import sys

if os.environ.get("DBAPI_POOL_DJANGO_DRIVER") == "psycopg2":
    sys.modules["psycopg"] = None  # type: ignore[assignment]
elif os.environ.get("DBAPI_POOL_DJANGO_DRIVER") == "pymysql":
    import pymysql

    pymysql.install_as_MySQLdb()

ENGINE = os.environ.get("DBAPI_POOL_DJANGO_ENGINE", "sqlite3")
POOL = json.loads(os.environ.get("DBAPI_POOL_DJANGO_POOL", '{"max_size": 4}'))
TEST_NAME = os.environ.get("DBAPI_POOL_DJANGO_TEST_NAME", "test_dbapi_pool_django")
SQLITE_DIR = os.environ.get("DBAPI_POOL_DJANGO_SQLITE_DIR", ".")

SERVERS = {
    "postgresql": {"NAME": "test", "USER": "postgres", "HOST": "127.0.0.1", "PORT": "5432"},
    "mysql": {"NAME": "test", "USER": "root", "HOST": "127.0.0.1", "PORT": "3306"},
    "sqlite3": {"NAME": os.path.join(SQLITE_DIR, "main.sqlite3")},
}
OPTIONS = {"pool": POOL}
if ENGINE != "sqlite3":
    # A driver keyword that is also a pool setting's name (given to the driver).
    OPTIONS["connect_timeout"] = 10

SECRET_KEY = "dbapi-pool-tests-only"
INSTALLED_APPS = ["shop"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Paris"
DATABASES = {
    "default": {
        "ENGINE": f"dbapi_pool.django.{ENGINE}",
        **SERVERS[ENGINE],
        "CONN_MAX_AGE": int(os.environ.get("DBAPI_POOL_DJANGO_MAX_AGE", "0")),
        "CONN_HEALTH_CHECKS": os.environ.get("DBAPI_POOL_DJANGO_HEALTH_CHECKS") == "1",
        "OPTIONS": OPTIONS,
        "TEST": {"NAME": TEST_NAME},
    }
}
