"""A Django project on PostgreSQL through ``dbapi_pool.django.postgresql``."""
