"""Observability, the same in every flavour: listeners, timings, holders, timeouts that
name the holders (issue 12). Fake driver: every value is known."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from contract_flavours import GREEN_FLAVOUR

from dbapi_pool import PoolTimeout, tagged
from dbapi_pool.listeners import EVENTS, PoolListener
from dbapi_pool.testing.fakedb import FakeDatabase

MakePool = Callable[..., Any]


class Recorder:
    """Record every event with its arguments (the pool argument as its name)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        for event in EVENTS:
            setattr(self, f"on_{event}", self._recorder(event))

    def _recorder(self, event: str) -> Callable[..., None]:
        def record(pool: Any, *args: Any) -> None:
            with self.lock:
                self.events.append((event, pool.name, *args))

        return record

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


def test_listener_hears_a_connection_s_whole_life(db: FakeDatabase, make_pool: MakePool) -> None:
    recorder = Recorder()
    pool = make_pool(db, listeners=[recorder])
    conn = pool.get()
    raw = conn.raw
    pool.put(conn)
    pool.close()
    assert recorder.names() == ["connect", "checkout", "reset", "checkin", "close"]
    connect, checkout, reset, checkin, close = recorder.events
    assert connect[:3] == ("connect", "test", raw) and connect[3] >= 0
    assert checkout[:3] == ("checkout", "test", raw) and checkout[3] >= 0
    assert reset == ("reset", "test", raw)
    assert checkin[:3] == ("checkin", "test", raw) and checkin[3] >= 0
    assert close == ("close", "test", raw, "pool_closed")


def test_a_reused_connection_is_checked_out_with_no_wait(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    recorder = Recorder()
    pool = make_pool(db)
    pool.put(pool.get())
    pool.add_listener(recorder)
    pool.put(pool.get())
    assert recorder.events[0][0] == "checkout" and recorder.events[0][3] == 0.0
    pool.remove_listener(recorder)
    pool.put(pool.get())
    assert recorder.names() == ["checkout", "reset", "checkin"]


def test_wait_and_timeout_are_heard_and_the_message_names_the_holder(
    db: FakeDatabase, make_pool: MakePool, flavour: str
) -> None:
    recorder = Recorder()
    pool = make_pool(db, max_size=1, listeners=[recorder])
    held = pool.get(tag="report-job")
    with pytest.raises(PoolTimeout) as caught:
        pool.get(timeout=0.05)
    message = str(caught.value)
    assert "pool 'test'" in message and "held by #" in message
    assert "[report-job]" in message
    if flavour != "asyncio":  # the facade's get() is a task of its own: no caller frame
        assert __file__.rsplit("/", 1)[-1] in message  # the file:line that checked it out
    names = recorder.names()
    assert names[-2:] == ["wait", "timeout"]
    assert recorder.events[-1][2] >= 0.04
    pool.put(held)


def test_failed_connect_and_broken_connection_are_heard(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    recorder = Recorder()
    pool = make_pool(db, listeners=[recorder])
    conn = pool.get()
    conn.raw.kill()
    pool.put(conn)
    names = recorder.names()
    assert names[-3:] == ["invalidate", "close", "checkin"], names
    assert recorder.events[-3][3] == "reset_failed"
    db.fail_connects = 1
    with pytest.raises(Exception, match="connection refused"):
        pool.get()
    assert recorder.names()[-1] == "connect_failed"


def test_a_raising_listener_is_logged_once_and_breaks_nothing(
    db: FakeDatabase, make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def on_checkout(self, pool: Any, conn: Any, waited: float) -> None:
            raise RuntimeError("listener bug")

    recorder = Recorder()
    pool = make_pool(db, listeners=[Broken(), recorder])
    with caplog.at_level(logging.ERROR, logger="dbapi_pool"):
        for _ in range(3):
            pool.put(pool.get())
    failures = [r for r in caplog.records if "listener bug" in r.getMessage()]
    assert len(failures) == 1 and "on_checkout" in failures[0].getMessage()
    assert recorder.names().count("checkout") == 3  # the next listener still heard it
    assert pool.stats().checkouts == 3


def test_bad_listeners_are_refused_or_warned_about(db: FakeDatabase, make_pool: MakePool) -> None:
    class Misspelt:
        def on_chekout(self, pool: Any, conn: Any, waited: float) -> None:
            pass

        def on_checkin(self, pool: Any, conn: Any, held: float) -> None:
            pass

    pool = make_pool(db)
    with pytest.warns(UserWarning, match=r"on_chekout.*did you mean on_checkout"):
        pool.add_listener(Misspelt())
    with pytest.raises(TypeError, match="implements no pool event"):
        pool.add_listener(object())
    with pytest.raises(TypeError, match="an instance"):
        pool.add_listener(Recorder)
    with pytest.raises(ValueError, match="not one of its listeners"):
        pool.remove_listener(Recorder())
    with pytest.raises(TypeError, match="listeners must be a list"):
        make_pool(db, listeners=Recorder())


def test_subclassing_pool_listener_calls_only_what_is_overridden(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    class OnlyClose(PoolListener):
        def __init__(self) -> None:
            self.reasons: list[str] = []

        def on_close(self, pool: Any, conn: Any, reason: str) -> None:
            self.reasons.append(reason)

    listener = OnlyClose()
    pool = make_pool(db, listeners=[listener], max_idle=0)
    pool.put(pool.get())
    assert listener.reasons == ["close_on_return"]


def test_timings_count_every_checkout_return_and_connect(
    db: FakeDatabase, make_pool: MakePool
) -> None:
    pool = make_pool(db, max_size=2)
    first, second = pool.get(), pool.get()  # two connects
    pool.put(first)
    pool.put(second)
    for _ in range(5):
        pool.put(pool.get())  # reused at once: waited 0
    stats = pool.stats()
    assert stats.checkouts == 7
    assert stats.wait_time.count == 7
    assert stats.wait_time.counts[0] >= 5  # the reuses waited 0 s
    assert stats.use_time.count == 7
    assert stats.create_time.count == 2 == stats.connects
    assert stats.create_time.sum > 0 and stats.use_time.sum > 0


def test_a_waiter_s_wait_is_measured(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db, max_size=1)
    held = pool.get()
    with pytest.raises(PoolTimeout):
        pool.get(timeout=0.05)
    stats = pool.stats()
    assert stats.wait_time.count == 1  # a timed-out wait is not a checkout's wait
    pool.put(held)


def test_holders_name_tag_and_site(db: FakeDatabase, make_pool: MakePool, flavour: str) -> None:
    pool = make_pool(db, max_size=3)
    first = pool.get(tag="first")
    with pool.connection(tag="second") as second:
        holders = pool.holders()
        assert [h.tag for h in holders] == ["first", "second"]
        assert holders[0].held_for >= holders[1].held_for >= 0
        for holder in holders:
            if flavour != "asyncio":  # the facade's get() is a task: tests/asyncio covers it
                assert holder.site.startswith(__file__), holder.site
            assert holder.holder != "?"
        assert second.raw is not first.raw
    assert [h.tag for h in pool.holders()] == ["first"]
    pool.put(first)
    assert pool.holders() == []


@pytest.mark.skipif(GREEN_FLAVOUR is None, reason="the threads flavour: see test_tagged")
def test_tagged_in_green_threads(db: FakeDatabase, make_pool: MakePool) -> None:
    pool = make_pool(db)
    with tagged("green-job"):
        conn = pool.get()
    assert pool.holders()[0].tag == "green-job"
    assert pool.holders()[0].holder.startswith("greenlet")
    pool.put(conn)


def test_tagged(db: FakeDatabase, make_pool: MakePool, flavour: str) -> None:
    if flavour == "asyncio":
        pytest.skip("the facade runs get() on the loop's thread: tests/asyncio covers it")
    pool = make_pool(db)
    with tagged("job-7"):
        line = sys._getframe().f_lineno + 1
        conn = pool.get()
        inner = pool.get(tag="explicit")
    assert sorted(h.tag or "" for h in pool.holders()) == ["explicit", "job-7"]
    assert pool.holders()[0].site == f"{__file__}:{line} in test_tagged"
    pool.put(conn)
    pool.put(inner)


def test_a_checkout_from_another_thread_names_its_site(
    db: FakeDatabase, make_pool: MakePool, flavour: str
) -> None:
    """(``gevent.spawn(pool.get)``, where get() has no caller frame at all since gevent's
    run is C code: tests/green/finalizer_switch.py.)"""
    if flavour != "threads":
        pytest.skip("OS threads only (asyncio's facade get() is a task of its own)")
    pool = make_pool(db)
    got: list[Any] = []
    runner = threading.Thread(target=lambda: got.append(pool.get()))
    runner.start()
    runner.join()
    assert pool.holders()[0].site.endswith("in <lambda>")
    pool.put(got[0])


def test_stats_serialise_as_they_are(db: FakeDatabase, make_pool: MakePool) -> None:
    """``json.dumps(stats.as_dict())`` and ``dataclasses.asdict(stats)`` both work (the
    closes were a mappingproxy, which neither could take); the counts stay read-only."""
    import dataclasses
    import json

    pool = make_pool(db, max_idle=0)
    pool.put(pool.get())
    stats = pool.stats()
    data = json.loads(json.dumps(stats.as_dict()))
    assert data["closes"]["close_on_return"] == 1 and data["checkouts"] == 1
    assert data["use_time"]["count"] == 1 and data["use_time"]["p50"] is not None
    assert json.loads(json.dumps(dataclasses.asdict(stats)))["closes"]["close_on_return"] == 1
    with pytest.raises(TypeError, match="read-only"):
        stats.closes["broken"] = 5  # type: ignore[index]
