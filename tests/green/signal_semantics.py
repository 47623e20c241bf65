"""Run by test_green.py: the eventlet backend's waiter signal keeps a lock's promises.

Prints one JSON line: what each check saw.
"""

from __future__ import annotations

import json
import time

import eventlet
from eventlet.hubs import get_hub

from dbapi_pool._sync.backends import EventletBackend


def pending_timers() -> int:
    """Count the hub's timers not yet fired or cancelled."""
    hub = get_hub()
    return sum(not timer.called for _, timer in hub.timers + hub.next_timers)


def main() -> None:
    backend = EventletBackend()
    seen: dict[str, object] = {}

    signal = backend.new_signal()
    seen["taken_at_start"] = signal.acquire(False)
    signal.release()
    seen["released_before"] = signal.acquire()  # at once, no switch needed
    seen["taken_again"] = signal.acquire(False)

    started = time.monotonic()
    seen["timed_out"] = signal.acquire(True, 0.05)
    seen["waited"] = time.monotonic() - started
    signal.release()
    seen["usable_after_timeout"] = signal.acquire(True, 0.05)

    # A release from another green thread wakes the waiter, and cancels its timer.
    signal = backend.new_signal()
    eventlet.spawn_after(0.01, signal.release)
    seen["woken"] = signal.acquire(True, 5.0)
    seen["timers_pending"] = pending_timers()

    # A waiter that timed out and sleeps on something else: a late release leaves it be.
    signal = backend.new_signal()
    slept: list[float] = []

    def time_out_then_sleep() -> None:
        signal.acquire(True, 0.02)
        started = time.monotonic()
        eventlet.sleep(0.2)
        slept.append(time.monotonic() - started)

    sleeper = eventlet.spawn(time_out_then_sleep)
    eventlet.sleep(0.05)
    signal.release()
    sleeper.wait()
    seen["slept_after_timeout"] = slept[0]

    # A waiter killed after its release was scheduled: the late wake-up goes nowhere.
    signal = backend.new_signal()
    outcome: list[str] = []

    def wait() -> None:
        try:
            outcome.append(str(signal.acquire()))
        except BaseException as exc:
            outcome.append(type(exc).__name__)
            raise

    waiter = eventlet.spawn(wait)
    eventlet.sleep(0)  # it waits now
    signal.release()  # schedules its wake-up...
    waiter.kill()  # ...but it is gone first
    eventlet.sleep(0.01)
    seen["killed"] = outcome
    seen["still_up"] = signal.acquire(False)  # the release was not lost on the dead waiter
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
