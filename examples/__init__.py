"""Runnable example applications of dbapi-pool (see ``examples/README.md``)."""
