"""Run by test_green.py: eventlet's offloader shuts down without touching a closed pipe.

``close()`` used to write a wake-up byte to the pipe after queueing the stop markers,
while the last worker thread, stopping, closed that same write end: ``OSError: [Errno 9]
Bad file descriptor`` (in the pool's finalizer: an "exception ignored" warning), or, if
the number was reused meanwhile, a byte written into an unrelated file (issue 11).

Two checks, each printed as one JSON line:

- ``held``: the worst interleaving, forced. The offloader's ``os`` is replaced by a
  recorder whose ``write`` from the thread calling ``close()`` waits until the pipe's
  write end was closed; every write to a descriptor already closed is recorded.
- ``stress``: pools made, used and dropped in a loop, with a tiny switch interval;
  exceptions ignored in finalizers are recorded.
"""

from __future__ import annotations

import gc
import json
import sys
import warnings
from typing import Any

# Run with -W error: only eventlet's own notice of its deprecation is let through.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

from dbapi_pool import ConnectionPool  # noqa: E402
from dbapi_pool._sync.backends import EventletBackend  # noqa: E402
from dbapi_pool.testing.fakedb import FakeDatabase  # noqa: E402

real_os = eventlet.patcher.original("os")
real_threading = eventlet.patcher.original("threading")


class RecordingOS:
    """Forward to the real ``os``; record writes to closed descriptors; hold back the
    closing thread's writes until the write end is closed (at most 2 s)."""

    def __init__(self, write_end: int) -> None:
        self.write_end = write_end
        self.closer: int | None = None  # the thread inside close()
        self.closed: set[int] = set()
        self.late_writes: list[int] = []
        self.write_end_closed = real_threading.Event()

    def write(self, fd: int, data: bytes) -> int:
        if real_threading.get_ident() == self.closer and fd == self.write_end:
            self.write_end_closed.wait(2.0)
        if fd in self.closed:
            self.late_writes.append(fd)
        return int(real_os.write(fd, data))

    def close(self, fd: int) -> None:
        self.closed.add(fd)
        real_os.close(fd)
        if fd == self.write_end:
            self.write_end_closed.set()

    def read(self, fd: int, size: int) -> bytes:
        return bytes(real_os.read(fd, size))


def held() -> dict[str, Any]:
    hops: Any = EventletBackend().offloader(2)
    assert hops(lambda: 42) == 42  # starts the threads and the pipe
    read_end, write_end = hops._pipe
    recorder = RecordingOS(write_end)
    hops._os = recorder
    recorder.closer = real_threading.get_ident()
    error = None
    try:
        hops.close()
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    # The reader (a listener of this thread's hub) closes its end once woken.
    for _ in range(500):
        if read_end in recorder.closed and write_end in recorder.closed:
            break
        eventlet.sleep(0.01)
    return {
        "error": error,
        "late_writes": len(recorder.late_writes),
        "write_end_closed": write_end in recorder.closed,
        "read_end_closed": read_end in recorder.closed,
    }


def stress(rounds: int) -> dict[str, Any]:
    ignored: list[str] = []
    sys.unraisablehook = lambda info: ignored.append(f"{info.exc_type.__name__}: {info.exc_value}")
    sys.setswitchinterval(1e-6)  # switch OS threads as often as possible
    db = FakeDatabase()
    for _ in range(rounds):
        pool = ConnectionPool(db, max_size=1, backend="eventlet", offload=True)
        with pool.connection() as conn:
            conn.cursor().execute("SELECT 1")
        del pool, conn
        gc.collect()  # the finalizer closes the offloader
    sys.setswitchinterval(0.005)
    eventlet.sleep(0.1)
    return {"ignored": ignored[:5], "ignored_count": len(ignored)}


def main() -> None:
    check = sys.argv[1]
    seen = held() if check == "held" else stress(int(sys.argv[2]))
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
