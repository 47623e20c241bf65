"""Settings shared by the benchmark's applications, read from the environment.

``BENCH_DSN`` (a libpq connection string), ``BENCH_SCHEMA`` (the schema holding ``items``),
``BENCH_APP_NAME`` (the sessions' ``application_name`` prefix: the driver counts the
sessions in ``pg_stat_activity`` by it), ``BENCH_VARIANT`` (which pool to serve) and
``BENCH_DBAPI_POOL_SETTINGS`` (below).
"""

from __future__ import annotations

import json
import os

DSN = os.environ.get("BENCH_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
SCHEMA = os.environ.get("BENCH_SCHEMA", "bench_web")
VARIANT = os.environ.get("BENCH_VARIANT", "dbapi_pool")
APP_NAME = f"{os.environ.get('BENCH_APP_NAME', 'benchweb')}-{os.getpid()}"
#: Extra dbapi-pool settings of the gevent ``dbapi_pool`` variant (a diagnostic knob), from
#: the JSON in ``BENCH_DBAPI_POOL_SETTINGS``, e.g. ``{"reset": null}``.
DBAPI_POOL_SETTINGS = json.loads(os.environ.get("BENCH_DBAPI_POOL_SETTINGS", "{}"))
#: Every variant has the same number of connections per worker process.
POOL_SIZE = 8
#: The checkout timeout, in seconds: a request waits at most this long for a connection.
CHECKOUT_TIMEOUT = 10.0
#: One indexed read plus 2 ms of server time (psycopg2 / psycopg 3 placeholders).
ITEM_SQL = f"SELECT id, name, pg_sleep(0.002) FROM {SCHEMA}.items WHERE id = %s"
#: The same statement for asyncpg's placeholders.
ITEM_SQL_DOLLAR = f"SELECT id, name, pg_sleep(0.002) FROM {SCHEMA}.items WHERE id = $1"


def sqlalchemy_url() -> str:
    """Return the SQLAlchemy URL of ``DSN`` (host, port, user, dbname; no password)."""
    parts = dict(item.split("=", 1) for item in DSN.split())
    return (
        f"postgresql+psycopg2://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}"
        f":{parts.get('port', '5432')}/{parts.get('dbname', 'test')}"
    )
