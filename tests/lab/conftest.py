"""Fixtures of the lab tests that kill, restart or flush Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.stack import PrivateRedis, private_redis


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    """A redis-server of the module's own (see `PrivateRedis`), for its stack."""
    with private_redis() as server:
        yield server
