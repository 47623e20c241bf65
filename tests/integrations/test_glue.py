"""The web-framework glue on real PostgreSQL (psycopg2): ``pool_lifespan`` under
Starlette's TestClient (a real lifespan run in its own event loop) and ``FlaskPool``
under Flask's test client, a forked child and an exiting interpreter."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import flask  # noqa: F401  (the test extra installs them: missing is a failure)
import psycopg2
import pytest
import starlette  # noqa: F401
from flask import Flask
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import dbapi_pool
from dbapi_pool import (
    AsyncConnectionPool,
    AsyncDatabaseConnector,
    ConnectionPool,
    PoolClosed,
    PoolTimeout,
)
from dbapi_pool.integrations.asgi import pool_lifespan
from dbapi_pool.integrations.flask import FlaskPool

pytestmark = pytest.mark.postgres

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a loopback TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- pool_lifespan ---------------------------------------------------------------------------


class PoolMaker:
    """A pool factory that keeps the pools it made."""

    def __init__(self, dsn: str = DSN, **settings: Any) -> None:
        self.dsn = dsn
        self.settings = settings
        self.made: list[AsyncConnectionPool] = []

    def __call__(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(psycopg2, self.dsn, **self.settings)
        self.made.append(pool)
        return pool


async def backend_pid(request: Request) -> JSONResponse:
    """Answer with the pid of the server session of one checkout."""
    return JSONResponse({"pid": await request.state.pool.fetchval("SELECT pg_backend_pid()")})


def starlette_app(lifespan: Any, route: Callable[..., Any] = backend_pid) -> Starlette:
    return Starlette(routes=[Route("/pid", route)], lifespan=lifespan)


def test_lifespan_opens_the_pool_at_startup_and_closes_it_at_shutdown() -> None:
    maker = PoolMaker(min_size=2, max_size=4)
    app = starlette_app(pool_lifespan(maker))
    assert maker.made == []  # made in the server's loop, at startup
    with TestClient(app) as client:
        (pool,) = maker.made
        assert not pool.closed
        assert pool.stats().idle == 2  # open(wait=True): min_size ready before requests
        answer = client.get("/pid")
        assert answer.status_code == 200
        assert isinstance(answer.json()["pid"], int)
    assert pool.closed
    assert pool.stats().size == 0


def test_the_lifespan_state_reaches_routes_under_state_key() -> None:
    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"one": await request.state.db.fetchval("SELECT 1")})

    maker = PoolMaker()
    with TestClient(starlette_app(pool_lifespan(maker, state_key="db"), count)) as client:
        assert client.get("/pid").json() == {"one": 1}


def test_a_pool_given_as_is_is_opened_and_closed() -> None:
    pool = AsyncConnectionPool(psycopg2, DSN, max_size=2)
    with TestClient(starlette_app(pool_lifespan(pool))) as client:
        assert client.get("/pid").status_code == 200
        assert not pool.closed
    assert pool.closed


def test_each_start_gets_a_fresh_pool_from_the_factory() -> None:
    async def make() -> AsyncConnectionPool:  # a coroutine function is a factory too
        return maker()

    maker = PoolMaker()
    app = starlette_app(pool_lifespan(make))
    for _ in range(2):
        with TestClient(app) as client:
            assert client.get("/pid").status_code == 200
    first, second = maker.made
    assert first is not second
    assert first.closed and second.closed


def test_a_failing_startup_after_the_pool_opened_closes_the_pool() -> None:
    maker = PoolMaker(min_size=1)
    pool_life = pool_lifespan(maker)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with pool_life(app) as state:
            assert state["pool"].stats().idle == 1
            raise RuntimeError("the app's own startup failed")
            yield state  # never reached

    with pytest.raises(RuntimeError, match="own startup failed"):
        with TestClient(starlette_app(lifespan)):
            pass
    (pool,) = maker.made
    assert pool.closed
    assert pool.stats().size == 0


def test_a_pool_that_cannot_reach_its_database_fails_startup_and_is_closed() -> None:
    maker = PoolMaker(f"host=127.0.0.1 port={free_port()} user=postgres dbname=test", min_size=1)
    with pytest.raises(PoolTimeout):
        with TestClient(starlette_app(pool_lifespan(maker, timeout=1.0))):
            pass
    (pool,) = maker.made
    assert pool.closed


def test_wait_false_starts_without_the_database() -> None:
    maker = PoolMaker(f"host=127.0.0.1 port={free_port()} user=postgres dbname=test", min_size=1)
    with TestClient(starlette_app(pool_lifespan(maker, wait=False, timeout=1.0))):
        (pool,) = maker.made
        assert not pool.closed
    assert pool.closed


def test_a_connector_is_closed_at_shutdown() -> None:
    connectors: list[AsyncDatabaseConnector] = []

    def make() -> AsyncDatabaseConnector:
        connectors.append(
            AsyncDatabaseConnector(psycopg2, {"default": {"user": "postgres", "port": 5432}})
        )
        return connectors[-1]

    async def one(request: Request) -> JSONResponse:
        pool = request.state.pool.get("127.0.0.1", "test")
        return JSONResponse({"one": await pool.fetchval("SELECT 1")})

    with TestClient(starlette_app(pool_lifespan(make), one)) as client:
        assert client.get("/pid").json() == {"one": 1}
        (connector,) = connectors
        (pool,) = connector.pools().values()
    assert pool.closed
    with pytest.raises(PoolClosed):
        connector.get("127.0.0.1", "other")


def test_pool_lifespan_refuses_what_is_no_pool() -> None:
    with pytest.raises(TypeError, match="got str"):
        pool_lifespan("postgresql://")  # type: ignore[arg-type]


def test_a_factory_returning_no_async_pool_fails_startup() -> None:
    made: list[ConnectionPool] = []

    def make() -> Any:
        made.append(ConnectionPool(psycopg2, DSN))
        return made[-1]

    with pytest.raises(TypeError, match="got ConnectionPool"):
        with TestClient(starlette_app(pool_lifespan(make))):
            pass
    made[0].close()


# -- FlaskPool --------------------------------------------------------------------------------


class SyncPoolMaker:
    """A ConnectionPool factory that keeps the pools it made (closed after the test)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.made: list[ConnectionPool] = []

    def __call__(self) -> ConnectionPool:
        pool = ConnectionPool(psycopg2, DSN, **self.settings)
        self.made.append(pool)
        return pool


@pytest.fixture
def maker() -> Any:
    made = SyncPoolMaker(max_size=4)
    yield made
    for pool in made.made:
        pool.close()


def flask_app(db: FlaskPool) -> Flask:
    """An app with a route that reports its checkout's holders while holding it."""
    app = Flask(__name__)
    db.init_app(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/item/<int:item_id>")
    def item(item_id: int) -> dict[str, Any]:
        with db.connection() as conn:
            cursor = conn.cursor()
            cursor.execute("SELECT %s", (item_id,))
            (value,) = cursor.fetchone()
            held = db.pool.holders()
        return {"id": value, "tags": [h.tag for h in held], "sites": [h.site for h in held]}

    @app.errorhandler(404)
    def missing(exc: Exception) -> Any:
        return {"tag": dbapi_pool.checkout_tag.get()}, 404

    return app


def test_flask_pool_is_made_on_first_use(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    client = flask_app(db).test_client()
    assert client.get("/health").json == {"status": "ok"}
    assert maker.made == []
    assert client.get("/item/1").json["id"] == 1
    assert client.get("/item/2").json["id"] == 2
    (pool,) = maker.made
    assert db.pool is pool
    assert pool.stats().checkouts == 2


def test_each_checkout_of_a_request_is_tagged_with_its_route(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    client = flask_app(db).test_client()
    answer = client.get("/item/7").json
    assert answer["tags"] == ["/item/<int:item_id>"]
    assert answer["sites"][0].endswith(" in item")  # the view's line, not FlaskPool's
    assert dbapi_pool.checkout_tag.get() is None  # untagged after the request
    with db.connection() as _:
        (holder,) = db.holders()
    assert holder.tag is None


def test_a_shortcuts_holder_site_is_its_caller_not_flask_pool(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    db.fetchval("SELECT 1")  # the pool is made, and has an idle connection: the quick path

    def runs_a_shortcut() -> None:
        db.fetchval("SELECT pg_sleep(0.5)")

    def held_by_the_thread() -> list[dbapi_pool.Holder]:
        # holder and site are stored just after the checkout: a snapshot may precede them
        return [h for h in db.holders() if h.holder == "thread 'shortcut'"]

    thread = threading.Thread(target=runs_a_shortcut, name="shortcut")
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not held_by_the_thread() and time.monotonic() < deadline:
            time.sleep(0.01)
        (holder,) = held_by_the_thread()
    finally:
        thread.join()
    assert holder.site.endswith(" in runs_a_shortcut"), holder.site


def test_a_request_without_a_route_is_tagged_with_its_path(maker: SyncPoolMaker) -> None:
    client = flask_app(FlaskPool(factory=maker)).test_client()
    answer = client.get("/nowhere")
    assert (answer.status_code, answer.json) == (404, {"tag": "/nowhere"})


def test_tag_requests_false_leaves_checkouts_untagged(maker: SyncPoolMaker) -> None:
    client = flask_app(FlaskPool(factory=maker, tag_requests=False)).test_client()
    assert client.get("/item/7").json["tags"] == [None]


def test_the_app_context_teardown_does_not_close_the_pool(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    app = flask_app(db)
    assert app.test_client().get("/item/1").status_code == 200
    with app.app_context():
        assert db.fetchval("SELECT 41 + 1") == 42
    assert not db.pool.closed
    assert db.fetchall("SELECT 1 UNION ALL SELECT 2 ORDER BY 1") == [(1,), (2,)]
    assert db.fetchone("SELECT 3") == (3,)
    assert db.execute("SELECT 1") == 1
    assert db.stats().in_use == 0
    assert db.stats().size == 1  # one connection, reused by every checkout


def test_close_closes_this_processs_pool(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    client = flask_app(db).test_client()
    db.close()  # no pool yet: nothing to close, nothing made
    assert maker.made == []
    assert client.get("/item/1").status_code == 200
    db.close()
    assert db.pool.closed
    with pytest.raises(PoolClosed):
        db.fetchval("SELECT 1")


def test_a_second_init_app_on_the_same_app_is_refused(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    app = flask_app(db)
    with pytest.raises(RuntimeError, match="already registered on the Flask app"):
        db.init_app(app)
    assert app.extensions["dbapi_pool"] == [db]
    flask_app(db)  # another app may share it


def test_flask_pool_takes_the_app_first_and_settings(maker: SyncPoolMaker) -> None:
    app = Flask(__name__)
    db = FlaskPool(app, psycopg2, DSN, name="flaskpool-test", max_size=3)
    try:
        assert app.extensions["dbapi_pool"] == [db]
        assert (db.pool.name, db.pool.config.max_size) == ("flaskpool-test", 3)
        assert db.fetchval("SELECT 1") == 1
    finally:
        db.close()


def test_flask_pool_takes_a_url() -> None:
    db = FlaskPool(url="postgresql+psycopg2://postgres@127.0.0.1:5432/test", max_size=2)
    try:
        assert db.fetchval("SELECT current_database()") == "test"
        assert db.pool.config.max_size == 2
    finally:
        db.close()


def test_flask_pool_needs_exactly_one_source(maker: SyncPoolMaker) -> None:
    with pytest.raises(TypeError, match="needs one of"):
        FlaskPool()
    with pytest.raises(TypeError, match="needs one of"):
        FlaskPool(psycopg2, DSN, url="postgresql+psycopg2://postgres@127.0.0.1/test")
    with pytest.raises(TypeError, match="no pool settings"):
        FlaskPool(factory=maker, max_size=3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_a_pool_of_its_own(maker: SyncPoolMaker) -> None:
    db = FlaskPool(factory=maker)
    parent_session = db.fetchval("SELECT pg_backend_pid()")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report, then leave without running pytest's teardown
        code = 1
        try:
            session = db.fetchval("SELECT pg_backend_pid()")
            os.write(write_end, f"{len(maker.made)} {session}".encode())
            db.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pools, session = report.split()
    assert pools == "2"  # the child made its own
    assert int(session) != parent_session
    assert len(maker.made) == 1  # the parent kept its own, and goes on using it
    assert db.fetchval("SELECT pg_backend_pid()") == parent_session


def test_the_pool_is_closed_when_the_interpreter_exits() -> None:
    script = textwrap.dedent(
        f"""
        import atexit, psycopg2
        from flask import Flask
        seen = []
        # atexit runs the last registered first: this runs after FlaskPool's close
        atexit.register(lambda: print("closed at exit:", seen[0].closed, seen[0].stats().size))
        from dbapi_pool.integrations.flask import FlaskPool
        db = FlaskPool(Flask("exiting"), psycopg2, {DSN!r})
        assert db.fetchval("SELECT 1") == 1
        seen.append(db.pool)
        print("open:", db.pool.closed, db.pool.stats().size)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["open: False 1", "closed at exit: True 0"], done.stdout
