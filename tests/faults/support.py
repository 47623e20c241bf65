"""Small helpers shared by the fault tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "REPORT",
    "BackgroundCall",
    "RoutedDriver",
    "attempts_until_ok",
    "closed_as_dead",
    "elapsed",
    "query_ok",
    "report",
    "scalar",
    "serves",
    "wait_until",
]

#: Numbers the tests measured, printed in pytest's terminal summary (see conftest.py).
REPORT: dict[str, str] = {}


def report(key: str, value: object) -> None:
    """Record a measurement for the terminal summary."""
    REPORT[key] = str(value)


def scalar(conn: Any, sql: str, params: Any = None) -> Any:
    """Run ``sql`` on a (pooled) connection; return the first column of the first row."""
    cur = conn.cursor()
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, params)
        row = cur.fetchone()
    finally:
        cur.close()
    assert row is not None, f"no row from {sql!r}"
    return row[0]


def wait_until(check: Callable[[], bool], timeout: float = 15.0, interval: float = 0.05) -> bool:
    """Poll ``check()`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


@contextmanager
def elapsed() -> Iterator[list[float]]:
    """Measure a block: ``with elapsed() as t: ...`` then ``t[0]`` is its duration."""
    box = [0.0]
    start = time.monotonic()
    try:
        yield box
    finally:
        box[0] = time.monotonic() - start


class BackgroundCall:
    """Run ``fn(*args)`` in a daemon thread; keep its result or exception."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.result = fn(*args)
        except BaseException as exc:
            self.error = exc
        self.finished = time.monotonic()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the call to end; tell whether it has."""
        self._thread.join(timeout)
        return self.done

    @property
    def done(self) -> bool:
        """Tell whether the call has ended."""
        return not self._thread.is_alive()

    def join(self, timeout: float = 30.0) -> BackgroundCall:
        """Wait for the call (bounded); fail the test if it is still running."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"background call still running after {timeout} s"
        return self

    @property
    def duration(self) -> float:
        """Return how long the call took (it must have ended)."""
        assert self.finished is not None
        return self.finished - self.started


class RoutedDriver:
    """Stand in for a DB-API module whose ``connect()`` goes where ``route(n)`` says.

    ``route`` gets the serial number of the connect (0, 1, ...) and returns the port to use;
    everything else (exceptions, ``paramstyle``...) is the real driver's. It carries the
    real driver's ``__name__`` so the pool picks the same driver profile.
    """

    def __init__(self, module: Any, route: Callable[[int], int]) -> None:
        self._module = module
        self._route = route
        self._count = 0
        self._lock = threading.Lock()
        self.__name__ = module.__name__

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        """Connect to the port ``route`` picks for this attempt."""
        with self._lock:
            number = self._count
            self._count += 1
        return self._module.connect(*args, **{**kwargs, "port": self._route(number)})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def query_ok(pool: Any, sql: str = "SELECT 1", timeout: float = 15) -> Any:
    """Run one statement in a ``with pool.connection()`` block and return its value."""
    with pool.connection(timeout=timeout) as conn:
        return scalar(conn, sql)


def serves(pool: Any, errors: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Tell whether a ``SELECT 1`` through the pool succeeds now (``errors`` mean no)."""
    try:
        return bool(query_ok(pool) == 1)
    except errors:
        return False


def attempts_until_ok(
    pool: Any, error: type[BaseException] | tuple[type[BaseException], ...], limit: int
) -> int:
    """Query until a statement succeeds; return how many attempts failed with ``error``."""
    failures = 0
    for _ in range(limit):
        try:
            assert query_ok(pool) == 1
            return failures
        except error:
            failures += 1
    raise AssertionError(f"the pool still failed after {limit} attempts")


def closed_as_dead(pool: Any) -> int:
    """Count the connections the pool closed because they were dead, whatever the path."""
    closes = pool.stats().closes
    return int(closes["failed_check"] + closes["broken"] + closes["reset_failed"])
