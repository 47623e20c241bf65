"""The example's one app: ``Item(id, name)`` and its views."""
