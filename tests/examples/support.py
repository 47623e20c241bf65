"""Helpers of the example smoke tests: free loopback ports, bounded polling, HTTP GETs,
session counts from ``pg_stat_activity`` and 200 concurrent requests."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from processes import TIMEOUT, LoggedProcess, free_port, poll

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
MAX_SIZE = 8
CONCURRENT = 200


def fetch(url: str) -> tuple[int, Any]:
    """GET ``url``; return the status and the decoded JSON body (errors included)."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sessions(app_name: str) -> dict[str, int]:
    """Count the PostgreSQL sessions of each process of the app (its application_name
    is ``<app_name>-<pid>``)."""
    import psycopg2  # the tests skip without it

    conn = psycopg2.connect(PG)
    try:
        conn.autocommit = True
        cursor = conn.cursor()
        cursor.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity"
            " WHERE starts_with(application_name, %s) GROUP BY 1",
            (app_name + "-",),
        )
        return dict(cursor.fetchall())
    finally:
        conn.close()


class SessionSampler(threading.Thread):
    """Sample the app's sessions per process until stopped; keep the largest counts."""

    def __init__(self, app_name: str) -> None:
        super().__init__(daemon=True)
        self.app_name = app_name
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self.done = threading.Event()
        self.error: BaseException | None = None

    def sample(self) -> None:
        """Count the sessions once; raise the peaks."""
        for process, count in sessions(self.app_name).items():
            self.peaks[process] = max(count, self.peaks.get(process, 0))
        self.samples += 1

    def run(self) -> None:
        try:
            while not self.done.is_set():
                self.sample()
        except BaseException as exc:
            self.error = exc


def expected_items() -> list[tuple[int, Any]]:
    """Return the answers :func:`hammer` should get, in order."""
    return [(200, {"id": i % 1000 + 1, "name": f"item {i % 1000 + 1}"}) for i in range(CONCURRENT)]


def hammer(url: str) -> list[tuple[int, Any]]:
    """GET ``url/item/<n>`` CONCURRENT times at once from as many threads; return the
    answers in order."""
    answers: list[tuple[int, Any]] = [(0, None)] * CONCURRENT
    start = threading.Barrier(CONCURRENT)

    def one(i: int) -> None:
        start.wait(TIMEOUT)
        try:
            answers[i] = fetch(f"{url}/item/{i % 1000 + 1}")
        except Exception as exc:
            answers[i] = (-1, repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "requests still running"
    return answers


def hammer_sampled(url: str, app_name: str) -> tuple[list[tuple[int, Any]], SessionSampler]:
    """Run :func:`hammer` while a :class:`SessionSampler` counts the app's sessions; take a
    last sample after the requests (the pools keep their connections idle)."""
    sampler = SessionSampler(app_name)
    sampler.start()
    try:
        answers = hammer(url)
    finally:
        sampler.done.set()
        sampler.join(TIMEOUT)
    assert sampler.error is None, repr(sampler.error)
    sampler.sample()
    return answers, sampler


class ServerProcess(LoggedProcess):
    """An example server on ``url``, logging to a file."""

    url = ""

    def get(self, path: str) -> tuple[int, Any]:
        """GET ``path`` on the server (fail at once if the server has exited)."""
        self.fail_if_exited()
        return fetch(self.url + path)


def running(server: ServerProcess, name: str) -> Iterator[ServerProcess]:
    """Yield ``server`` once it answers ``/health``; stop it in any case (a fixture's body)."""
    try:
        poll(
            f"{name} to answer /health",
            lambda: server.get("/health") == (200, {"status": "ok"}) or None,
        )
        yield server
    finally:
        server.stop()


__all__ = ["TIMEOUT", "ServerProcess", "fetch", "free_port", "poll", "running"]
