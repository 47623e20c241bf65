"""The asyncio front-end: AsyncConnectionPool and its connection and cursor facades."""

from .connection import AsyncCursor, AsyncPooledConnection
from .pool import AsyncConnectionPool

__all__ = ["AsyncConnectionPool", "AsyncCursor", "AsyncPooledConnection"]
