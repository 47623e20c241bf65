"""The one model of the test project."""

from django.db import models


class Item(models.Model):
    """A named quantity."""

    name = models.CharField(max_length=50)
    quantity = models.IntegerField(default=0)
