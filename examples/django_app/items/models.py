"""The example's model."""

from django.db import models


class Item(models.Model):
    """One item: an id and a name (``item <id>``)."""

    id = models.IntegerField(primary_key=True)
    name = models.TextField()

    def __str__(self) -> str:
        return self.name
