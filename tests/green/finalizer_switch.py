"""Run by test_green.py: a finalizer that switches green threads, run by a garbage
collection while a green thread holds the pool's lock, must not freeze the hub.

Usage: ``finalizer_switch.py gevent|eventlet``. Prints one JSON line: what happened.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import sys

FLAVOUR = sys.argv[1]
if FLAVOUR == "gevent":
    from gevent import monkey

    monkey.patch_all()
    import gevent

    sleep, spawn = gevent.sleep, gevent.spawn
else:
    import eventlet

    eventlet.monkey_patch()
    sleep, spawn = eventlet.sleep, eventlet.spawn

from dbapi_pool import ConnectionPool  # noqa: E402 (after monkey-patching)
from dbapi_pool._core import PoolState  # noqa: E402
from dbapi_pool.testing.fakedb import FakeDatabase  # noqa: E402

finalized: list[str] = []


class Garbage:
    """A cycle whose finalizer does green I/O (here, a bare switch to the hub)."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        sleep(0)
        finalized.append("switched and came back")


def main() -> None:
    faulthandler.dump_traceback_later(20, exit=True)  # a frozen hub fails, not hangs
    pool = ConnectionPool(FakeDatabase(), max_size=1, backend=FLAVOUR, offload=False)
    add_waiter = PoolState.add_waiter

    def collecting_add_waiter(state: PoolState, *args: object) -> object:
        # Called with the pool's lock held: a collection may run at any allocation there.
        Garbage()
        gc.collect()
        return add_waiter(state, *args)

    PoolState.add_waiter = collecting_add_waiter  # type: ignore[method-assign]
    held = pool.get()
    waiter = spawn(pool.get)  # must wait, and collects while queuing, under the lock
    sleep(0)  # its finalizer switched back here, the lock still held
    pool.put(held)  # needs the lock: waits for the finalizer to finish, green
    got = waiter.get() if FLAVOUR == "gevent" else waiter.wait()
    served = not got.released
    pool.put(got)
    pool.close()
    print(json.dumps({"finalized": finalized, "served": served}))


if __name__ == "__main__":
    main()
