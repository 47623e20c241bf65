"""Settings are validated with errors that name the setting and the pool; never clamped."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dbapi_pool import ConnectionPool
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


def test_defaults_are_the_classic_ones() -> None:
    config = ConnectionPool(FakeDatabase()).config
    assert (config.min_size, config.max_size, config.max_idle, config.max_age) == (0, 4, 10, 30)
    assert (config.connect_timeout, config.timeout, config.reset) == (5, 30, "rollback")


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        PoolConfig.build("")
