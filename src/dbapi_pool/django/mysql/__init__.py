"""Django mysql backend whose connections come from a dbapi-pool pool."""
