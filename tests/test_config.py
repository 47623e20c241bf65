"""Settings are validated with errors that name the setting and the pool; never clamped."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from dbapi_pool import AsyncConnectionPool, ConnectionPool
from dbapi_pool.config import PoolConfig
from dbapi_pool.testing.fakedb import FakeDatabase


@pytest.mark.parametrize(
    ("settings", "error", "fragment"),
    [
        ({"max_size": 0}, ValueError, "max_size must be >= 1"),
        ({"min_size": -1}, ValueError, "min_size must be >= 0"),
        ({"min_size": 5, "max_size": 4}, ValueError, "min_size (5) must not exceed max_size"),
        ({"max_size": 2.5}, TypeError, "max_size must be an integer"),
        ({"max_size": True}, TypeError, "max_size must be an integer"),
        ({"max_idle": -1}, ValueError, "max_idle must be >= 0"),
        ({"max_age": math.nan}, ValueError, "max_age must be >= 0"),
        ({"connect_timeout": 0}, ValueError, "connect_timeout must be > 0"),
        ({"timeout": "5"}, TypeError, "timeout must be a number"),
        ({"max_waiting": -1}, ValueError, "max_waiting must be >= 0"),
        ({"reset": "truncate"}, ValueError, "reset must be one of"),
    ],
)
def test_bad_setting_is_refused_naming_it_and_the_pool(
    settings: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as caught:
        ConnectionPool(FakeDatabase(), name="orders", **settings)
    assert fragment in str(caught.value)
    assert "'orders'" in str(caught.value)


def test_none_and_infinity_mean_no_limit() -> None:
    config = PoolConfig.build("p", max_idle=None, max_age=math.inf, timeout=None)
    assert (config.max_idle, config.max_age, config.timeout) == (None, None, None)


def test_defaults_keep_connections_for_minutes() -> None:
    # Issue 15: 10 min idle and 30 min lived (HikariCP's), not eventlet's 10 s and 30 s.
    config = ConnectionPool(FakeDatabase()).config
    assert (config.min_size, config.max_size, config.max_idle, config.max_age) == (0, 4, 600, 1800)
    assert (config.connect_timeout, config.timeout, config.reset) == (5, 30, "rollback")


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        PoolConfig.build("")


def test_every_default_is_the_config_fields_one() -> None:
    # One place for the defaults (issue 11): PoolConfig's fields, whatever the flavour.
    fields = {f.name: f.default for f in dataclasses.fields(PoolConfig) if f.name != "name"}
    config = AsyncConnectionPool(FakeDatabase()).config
    assert {key: getattr(config, key) for key in fields} == fields
    config = ConnectionPool(FakeDatabase()).config  # OS threads: their own handoff_after
    del fields["handoff_after"]
    assert {key: getattr(config, key) for key in fields} == fields


def test_handoff_after_none_means_the_default_strict_order() -> None:
    assert ConnectionPool(FakeDatabase()).config.handoff_after == 0
    assert ConnectionPool(FakeDatabase(), handoff_after=None).config.handoff_after == 0
    assert ConnectionPool(FakeDatabase(), handoff_after=0.002).config.handoff_after == 0.002


def test_build_refuses_an_unknown_setting_naming_it() -> None:
    with pytest.raises(TypeError, match="pool 'p': unknown settings: max_sise"):
        PoolConfig.build("p", max_sise=3)


def test_connect_args_is_kept_in_the_config() -> None:
    def fresh_token() -> dict[str, str]:
        return {"password": "token"}

    db = FakeDatabase()
    pool = ConnectionPool(db, connect_args=fresh_token)
    assert pool.config.connect_args is fresh_token
    pool.put(pool.get())
    assert db.connections[0].kwargs == {"password": "token"}
