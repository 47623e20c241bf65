"""What the tests that start servers of their own share: a free loopback port, polling
with a bound, and a server process whose log must hold no traceback when it stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

#: Generous: these machines are shared and noisy.
TIMEOUT = 60.0

T = TypeVar("T")


def poll(what: str, attempt: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """Call ``attempt`` until it returns something other than None (errors count as None);
    fail naming ``what`` and the last error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            result = attempt()
        except Exception as exc:
            result, last = None, exc
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} ({last!r})")
        time.sleep(0.05)


def free_port() -> int:
    """Return a loopback TCP port nobody listens on (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def terminate(process: subprocess.Popen[Any]) -> None:
    """Stop a server the test started: SIGTERM, then SIGKILL after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LoggedProcess:
    """A server process the test started, its output in a log file."""

    def __init__(
        self, command: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
    ) -> None:
        self.log = open(log, "w+b")  # noqa: SIM115 (closed in stop)
        self.final_output = ""
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def fail_if_exited(self) -> None:
        """Fail at once, with its log, if the server has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"the server exited ({self.process.returncode}):\n{self.output()}")

    def output(self) -> str:
        """Return what the server logged so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after 30 s); no traceback may be logged."""
        if self.process.poll() is None:
            terminate(self.process)
        if not self.log.closed:
            self.final_output = self.output()
            self.log.close()
            assert "Traceback" not in self.final_output, self.final_output
