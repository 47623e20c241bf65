"""dbapi-pool: a connection pool for any DB-API 2.0 driver."""

from ._async import AsyncConnectionPool, AsyncCursor, AsyncPooledConnection
from ._core import Holder, PoolStats, TimingStats
from ._drivers import DriverProfile, register_profile
from ._sync import ConnectionPool
from .config import PoolConfig
from .connector import AsyncDatabaseConnector, DatabaseConnector
from .errors import (
    ConnectionReleased,
    ConnectTimeout,
    ForeignConnection,
    PoolClosed,
    PoolError,
    PoolTimeout,
    TooManyWaiters,
    UnknownHost,
    WrongEventLoop,
)
from .holders import checkout_tag, tagged
from .proxy import PooledConnection

__version__ = "0.1.0"

__all__ = [
    "AsyncConnectionPool",
    "AsyncCursor",
    "AsyncDatabaseConnector",
    "AsyncPooledConnection",
    "ConnectTimeout",
    "ConnectionPool",
    "ConnectionReleased",
    "DatabaseConnector",
    "DriverProfile",
    "ForeignConnection",
    "Holder",
    "PoolClosed",
    "PoolConfig",
    "PoolError",
    "PoolStats",
    "PoolTimeout",
    "PooledConnection",
    "TimingStats",
    "TooManyWaiters",
    "UnknownHost",
    "WrongEventLoop",
    "checkout_tag",
    "register_profile",
    "tagged",
]
