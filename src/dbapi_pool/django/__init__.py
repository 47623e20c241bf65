"""Django database backends over dbapi-pool: ``dbapi_pool.django.postgresql``,
``dbapi_pool.django.mysql`` and ``dbapi_pool.django.sqlite3``.

Set ``DATABASES[alias]["ENGINE"]`` to one of them and ``OPTIONS["pool"]`` to ``True`` or a
dict of dbapi-pool settings (``docs/django.md``).
"""
