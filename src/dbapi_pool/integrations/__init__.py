"""Glue for web frameworks: open a pool when the application starts, close it when it stops.

- :mod:`dbapi_pool.integrations.asgi`: ``pool_lifespan()``, a lifespan handler for
  Starlette, FastAPI and other ASGI frameworks, around an ``AsyncConnectionPool``.
- :mod:`dbapi_pool.integrations.flask`: ``FlaskPool``, a Flask extension (``init_app``)
  around a ``ConnectionPool`` made in each process and closed when the process exits.

Each is imported on its own (``import dbapi_pool.integrations.flask`` needs Flask; the
ASGI one needs no framework). They use only ``dbapi_pool``'s public names.
"""
