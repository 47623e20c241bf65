"""The items app."""

from django.apps import AppConfig


class ItemsConfig(AppConfig):
    """Items, ids 1 to 1000 (made by the migrations)."""

    name = "items"
