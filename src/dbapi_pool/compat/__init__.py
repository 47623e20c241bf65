"""Drop-in replacements for the interfaces dbapi-pool descends from.

- :mod:`dbapi_pool.compat.eventlet_db_pool`: eventlet's ``db_pool`` module (0.41.3), so that
  code written for ``from eventlet import db_pool`` runs unchanged with
  ``from dbapi_pool.compat import eventlet_db_pool as db_pool``.

Nothing is imported here: each module pulls in its framework (eventlet...) only when used.
"""

__all__: list[str] = []
