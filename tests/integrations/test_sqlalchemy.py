"""dbapi_pool.sqlalchemy.Pool under SQLAlchemy engines, against the real servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dbapi_pool import PoolTimeout
from dbapi_pool.sqlalchemy import Pool

PG2 = "postgresql+psycopg2://postgres@127.0.0.1/test"
PG3 = "postgresql+psycopg://postgres@127.0.0.1/test"
MARIADB = "mysql+pymysql://root@127.0.0.1:3306/test"
HERE = Path(__file__).parent

pytestmark = pytest.mark.postgres


def app_name() -> str:
    return f"sqla-{uuid.uuid4().hex[:10]}"


def pg_engine(app: str, url: str = PG2, **options: Any) -> sa.Engine:
    return sa.create_engine(url, poolclass=Pool, connect_args={"application_name": app}, **options)


def sessions(app: str) -> int:
    """Count the server sessions of ``app`` (through a connection of its own)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_stat_activity where application_name = %s", (app,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def terminate(pid: int) -> None:
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_terminate_backend(%s)", (pid,))
    finally:
        conn.close()


def backend_pid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text("select pg_backend_pid()")).scalar_one())


@pytest.fixture
def table() -> Iterator[str]:
    name = f"sqla_{uuid.uuid4().hex[:8]}"
    yield name
    engine = sa.create_engine(PG2, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop table if exists {name}"))
    engine.dispose()


def test_engine_commit_and_rollback_are_seen_on_the_server(table: str) -> None:
    engine = pg_engine(app_name(), pool_size=2)
    with engine.begin() as conn:
        conn.execute(sa.text(f"create table {table} (n int)"))
        conn.execute(sa.text(f"insert into {table} values (1)"))
    with engine.connect() as conn:
        conn.execute(sa.text(f"insert into {table} values (2)"))
        conn.rollback()
    other = sa.create_engine(PG2, poolclass=sa.NullPool)
    with other.connect() as conn:
        assert conn.execute(sa.text(f"select n from {table}")).scalars().all() == [1]
    other.dispose()
    engine.dispose()


class Base(DeclarativeBase):
    pass


def test_orm_session_commits_and_rolls_back_with_psycopg3(table: str) -> None:
    class Row(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)

    engine = pg_engine(app_name(), url=PG3, pool_size=2)
    Base.metadata.create_all(engine, tables=[Row.__table__])  # type: ignore[list-item]
    with Session(engine) as session:
        session.add(Row(id=1))
        session.commit()
        session.add(Row(id=2))
        session.rollback()
    with Session(engine) as session:
        assert [row.id for row in session.scalars(sa.select(Row))] == [1]
    Base.metadata.remove(Row.__table__)  # type: ignore[arg-type]
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_engine_commits_through_the_pool() -> None:
    table = f"sqla_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(MARIADB, poolclass=Pool, pool_size=2)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"create table {table} (n int) engine=InnoDB"))
            conn.execute(sa.text(f"insert into {table} values (7)"))
        with engine.connect() as conn:
            conn.execute(sa.text(f"insert into {table} values (8)"))
            conn.rollback()
            assert conn.execute(sa.text(f"select n from {table}")).scalars().all() == [7]
        assert engine.pool.dbapi_pool.stats().in_use == 0
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"drop table if exists {table}"))
        engine.dispose()


def events_of(poolclass: type[sa.pool.Pool]) -> list[str]:
    """Run connect, checkout, checkin, invalidate and dispose; return the events seen."""
    engine = sa.create_engine(PG2, poolclass=poolclass, pool_size=1, max_overflow=0)
    seen: list[str] = []
    for name in ("first_connect", "connect", "checkout", "checkin", "reset", "invalidate", "close"):
        event.listen(engine, name, lambda *args, name=name: seen.append(name))
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    with engine.connect() as conn:
        conn.invalidate()
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    engine.dispose()
    return seen


def test_pool_events_fire_in_queuepools_order() -> None:
    once = ["checkout", "reset", "checkin"]
    expected = [
        *["first_connect", "connect", *once],
        *["checkout", "invalidate", "close", "checkin"],
        *["connect", *once, "close"],
    ]
    assert events_of(sa.pool.QueuePool) == expected
    assert events_of(Pool) == expected


def test_pre_ping_replaces_a_terminated_session() -> None:
    engine = pg_engine(app_name(), pool_size=1, max_overflow=0, pool_pre_ping=True)
    with engine.connect() as conn:
        first = backend_pid(conn)
    terminate(first)
    with engine.connect() as conn:  # no error: the ping found it dead
        second = backend_pid(conn)
    assert second != first
    engine.dispose()


def test_a_disconnect_error_invalidates_the_record_for_good() -> None:
    engine = pg_engine(app_name(), pool_size=1, max_overflow=0)
    invalidated: list[Any] = []
    event.listen(engine, "invalidate", lambda dbapi_conn, record, exc: invalidated.append(record))
    with engine.connect() as conn:
        pid = backend_pid(conn)
        record = conn.connection._connection_record  # type: ignore[attr-defined]
    terminate(pid)
    with engine.connect() as conn:
        with pytest.raises(sa.exc.OperationalError) as caught:
            conn.execute(sa.text("select 1"))
        assert caught.value.connection_invalidated
    with engine.connect() as conn:
        assert backend_pid(conn) != pid
        assert conn.connection._connection_record is not record  # type: ignore[attr-defined]
    assert invalidated == [record]
    assert engine.pool.dbapi_pool.stats().closes.get("broken") == 1
    engine.dispose()


def test_dispose_closes_the_sessions_on_the_server() -> None:
    app = app_name()
    engine = pg_engine(app, pool_size=3, max_overflow=0)
    held = [engine.connect() for _ in range(3)]
    for conn in held:
        conn.execute(sa.text("select 1"))
    held.pop().close()
    assert sessions(app) == 3
    engine.dispose()
    assert sessions(app) == 2  # the idle one closed now; the held ones when they come back
    old_pool = held[0].connection._pool  # type: ignore[attr-defined]
    for conn in held:
        conn.close()
    assert sessions(app) == 0
    assert old_pool.checkedin() == 0
    with engine.connect() as conn:  # the engine works on with a new pool
        conn.execute(sa.text("select 1"))
    engine.dispose()


def test_pool_recycle_replaces_an_old_connection() -> None:
    engine = pg_engine(app_name(), pool_size=1, max_overflow=0, pool_recycle=1)
    assert engine.pool.dbapi_pool.config.max_age == 1
    with engine.connect() as conn:
        first = backend_pid(conn)
    with engine.connect() as conn:
        assert backend_pid(conn) == first
    time.sleep(1.2)
    with engine.connect() as conn:
        assert backend_pid(conn) != first
    engine.dispose()


def test_pool_timeout_raises_sqlalchemy_timeout_naming_the_holders() -> None:
    engine = pg_engine(app_name(), pool_size=1, max_overflow=1, pool_timeout=0.3)
    held = [engine.connect(), engine.connect()]
    started = time.monotonic()
    with pytest.raises(sa.exc.TimeoutError) as caught:
        engine.connect()
    assert 0.25 < time.monotonic() - started < 5
    message = str(caught.value)
    assert "held by #" in message and "MainThread" in message and "max=2" in message
    assert f"{__file__}:" in message  # the site of each holder: this test's lines
    assert isinstance(caught.value.__cause__, PoolTimeout)
    for conn in held:
        conn.close()
    engine.dispose()


def test_32_threads_never_open_more_than_pool_size_plus_overflow() -> None:
    app = app_name()
    engine = pg_engine(app, pool_size=3, max_overflow=2, pool_timeout=60)
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            most = max(most, sessions(app))

    def work() -> None:
        for _ in range(5):
            with engine.connect() as conn:
                conn.execute(sa.text("select pg_sleep(0.01)"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work) for _ in range(32)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    watcher.join()
    stats = engine.pool.dbapi_pool.stats()
    engine.dispose()
    assert 3 <= most <= 5
    assert stats.in_use == 0 and stats.idle <= 5


def test_status_reports_like_queuepool() -> None:
    engine = pg_engine(app_name(), pool_size=2, max_overflow=1)
    a, b, c = engine.connect(), engine.connect(), engine.connect()
    c.close()
    assert engine.pool.status() == (
        "Pool size: 2  Connections in pool: 1 Current Overflow: 1 "
        "Current Checked out connections: 2"
    )
    a.close()
    b.close()
    engine.dispose()


def test_dbapi_pool_settings_reach_the_inner_pool() -> None:
    engine = pg_engine(app_name(), pool_size=2, dbapi_pool={"max_idle": 60, "name": "orders"})
    config = engine.pool.dbapi_pool.config
    assert (config.max_idle, config.name, config.max_size, config.timeout) == (60, "orders", 12, 30)
    engine.dispose()


def test_an_unknown_dbapi_pool_setting_is_refused_naming_it() -> None:
    with pytest.raises(sa.exc.ArgumentError, match=r"SQLAlchemy.*max_idel"):
        pg_engine(app_name(), dbapi_pool={"max_idel": 60})


def test_a_setting_sqlalchemy_owns_names_the_create_engine_option() -> None:
    with pytest.raises(TypeError, match=r"'timeout' is SQLAlchemy's.*pool_timeout"):
        pg_engine(app_name(), dbapi_pool={"timeout": 5})


def test_an_unbounded_pool_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"SQLAlchemy's pool_size.*max_overflow=-1"):
        pg_engine(app_name(), pool_size=5, max_overflow=-1)


def test_an_asyncio_driver_is_refused_naming_sqlalchemy() -> None:
    with pytest.raises(sa.exc.ArgumentError, match=r"asyncio driver 'psycopg'.*SQLAlchemy"):
        sa.create_engine("postgresql+psycopg_async://postgres@127.0.0.1/test", poolclass=Pool)


def test_gevent_greenlets_share_the_pool() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(HERE / "sqla_gevent.py")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE.parent.parent,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "gevent"
    assert result["pids"] == 3
    assert result["elapsed"] < 1.6  # 12 x 0.2 s over 3 connections: 0.8 s; serial: 2.4 s


def test_holders_name_the_applications_line_for_core_and_orm() -> None:
    engine = pg_engine(app_name(), pool_size=2, max_overflow=0)
    core = engine.connect()
    session = Session(engine)
    session.execute(sa.text("select 1"))
    sites = [holder.site for holder in engine.pool.dbapi_pool.holders()]
    assert [site.split(" in ")[-1] for site in sites] == [
        "test_holders_name_the_applications_line_for_core_and_orm"
    ] * 2
    assert all(site.startswith(__file__) for site in sites)
    session.close()
    core.close()
    engine.dispose()


def test_max_idle_closes_idle_sessions_on_the_server() -> None:
    app = app_name()
    engine = pg_engine(app, pool_size=2, dbapi_pool={"max_idle": 0.3})
    with engine.connect() as conn:
        conn.execute(sa.text("select 1"))
    assert sessions(app) == 1
    deadline = time.monotonic() + 5
    while sessions(app) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sessions(app) == 0
    assert engine.pool.stats().closes.get("max_idle") == 1
    engine.dispose()


def test_leak_timeout_warns_with_the_borrowers_line(caplog: pytest.LogCaptureFixture) -> None:
    engine = pg_engine(app_name(), pool_size=1, dbapi_pool={"leak_timeout": 0.2})
    with caplog.at_level("WARNING", logger="dbapi_pool"):
        conn = engine.connect()  # the leak
        deadline = time.monotonic() + 5
        while "leak_timeout" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    conn.close()
    engine.dispose()
    assert "leak_timeout=0.2" in caplog.text
    assert "conn = engine.connect()  # the leak" in caplog.text


def test_a_forked_child_opens_its_own_sessions_and_leaves_the_parents() -> None:
    engine = pg_engine(app_name(), pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        parent_pid = backend_pid(conn)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            with engine.connect() as conn:
                os.write(write, str(backend_pid(conn)).encode())
        finally:
            os._exit(0)
    os.close(write)
    child_pid = int(os.read(read, 100))
    os.close(read)
    os.waitpid(child, 0)
    assert child_pid != parent_pid
    with engine.connect() as conn:  # the parent's session was left alone: still the same
        assert backend_pid(conn) == parent_pid
    engine.dispose()


def test_connect_errors_reach_sqlalchemy_as_the_drivers_own() -> None:
    import psycopg2

    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/test", poolclass=Pool)
    for _ in range(2):
        with pytest.raises(sa.exc.OperationalError) as caught:
            engine.connect()
        assert isinstance(caught.value.orig, psycopg2.OperationalError)
    assert engine.pool.checkedout() == 0
    engine.dispose()


def test_a_connection_returned_during_a_collection_is_put_back_after_it(
    tmp_path: Path,
) -> None:
    """SQLAlchemy returns a connection lost in a reference cycle from the collector; the
    collection may run while this thread holds dbapi-pool's lock, so the return is queued
    and done at the next checkout (with a pool of one, that checkout needs it)."""
    import gc
    import warnings

    engine = sa.create_engine(
        f"sqlite:///{tmp_path / 'gc.db'}",
        poolclass=Pool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=2,
    )
    lost = engine.connect()
    cycle: dict[str, Any] = {"conn": lost}
    cycle["self"] = cycle
    del lost, cycle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's "non-checked-in connection" warning
        gc.collect()
    assert len(engine.pool._returned_in_gc) == 1  # type: ignore[attr-defined]
    assert engine.pool.stats().in_use == 1  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    assert engine.pool.stats().in_use == 0  # type: ignore[attr-defined]
    engine.dispose()
