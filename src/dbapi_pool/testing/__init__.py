"""Testing helpers for users of dbapi-pool."""
