"""Settings of the Django example: PostgreSQL through ``dbapi_pool.django.postgresql``.

From the environment: ``EXAMPLE_DB_NAME`` (``test``), ``EXAMPLE_DB_HOST`` (``127.0.0.1``),
``EXAMPLE_DB_PORT`` (``5432``), ``EXAMPLE_DB_USER`` (``postgres``), ``EXAMPLE_DB_SCHEMA``
(the ``search_path``, to keep the tables in a schema of their own; unset: the server's
default) and ``EXAMPLE_APP_NAME``: the sessions' ``application_name`` is it followed by
the pid of the process that loaded these settings (each gunicorn worker, without
``--preload``), so ``pg_stat_activity`` shows each process's sessions.
"""

import os

APP_NAME = os.environ.get("EXAMPLE_APP_NAME", "dbapi-pool-django")
SCHEMA = os.environ.get("EXAMPLE_DB_SCHEMA")
#: Connections per process: the pool never opens more.
MAX_SIZE = 8

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "dbapi-pool-example-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["items"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

OPTIONS: dict[str, object] = {
    # dbapi-pool's settings: one pool per process (made at the first query, so after
    # gunicorn's fork and gevent's monkey-patching).
    "pool": {"max_size": MAX_SIZE, "timeout": 30},
    "application_name": f"{APP_NAME}-{os.getpid()}",
}
if SCHEMA:
    OPTIONS["options"] = f"-c search_path={SCHEMA}"

DATABASES = {
    "default": {
        "ENGINE": "dbapi_pool.django.postgresql",
        "NAME": os.environ.get("EXAMPLE_DB_NAME", "test"),
        "USER": os.environ.get("EXAMPLE_DB_USER", "postgres"),
        "HOST": os.environ.get("EXAMPLE_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("EXAMPLE_DB_PORT", "5432"),
        "CONN_MAX_AGE": 0,  # required with a pool: the pool keeps the connections
        "OPTIONS": OPTIONS,
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"dbapi_pool": {"handlers": ["console"], "level": "INFO"}},
}
