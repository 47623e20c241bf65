"""The sans-I/O pool core shared by every front-end."""

from .state import CONNECT, ConnectGrant, Entry, Plan, PoolState, Waiter
from .stats import CLOSE_REASONS, PoolStats

__all__ = [
    "CLOSE_REASONS",
    "CONNECT",
    "ConnectGrant",
    "Entry",
    "Plan",
    "PoolState",
    "PoolStats",
    "Waiter",
]
