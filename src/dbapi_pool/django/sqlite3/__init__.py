"""Django sqlite3 backend whose connections come from a dbapi-pool pool."""
