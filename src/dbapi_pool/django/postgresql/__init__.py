"""Django postgresql backend whose connections come from a dbapi-pool pool."""
