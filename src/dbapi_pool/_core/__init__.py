"""The sans-I/O pool core shared by every front-end."""

from .control import PoolState
from .entries import CONNECT, ConnectGrant, Entry, EntryState, Plan, Waiter
from .stats import CLOSE_REASONS, PoolStats

__all__ = [
    "CLOSE_REASONS",
    "CONNECT",
    "ConnectGrant",
    "Entry",
    "EntryState",
    "Plan",
    "PoolState",
    "PoolStats",
    "Waiter",
]
