"""The blocking front-end: ConnectionPool for OS threads."""

from .pool import ConnectionPool

__all__ = ["ConnectionPool"]
