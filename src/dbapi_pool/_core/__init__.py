"""The sans-I/O pool core shared by every front-end."""

from .control import PoolState
from .entries import CONNECT, ConnectGrant, Entry, EntryState, Plan, Waiter
from .holders import Holder
from .stats import CLOSE_REASONS, PoolStats
from .timings import BOUNDS, TimingStats

__all__ = [
    "BOUNDS",
    "CLOSE_REASONS",
    "CONNECT",
    "ConnectGrant",
    "Entry",
    "EntryState",
    "Holder",
    "Plan",
    "PoolState",
    "PoolStats",
    "TimingStats",
    "Waiter",
]
