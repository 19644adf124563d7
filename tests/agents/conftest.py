"""A private Redis key space and control queue per test, on the machine's Redis."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from sgweb.hostsync.channel import SyncChannel, use_channel

TEST_REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def sync_channel() -> Iterator[SyncChannel]:
    prefix = f"sgwt-{secrets.token_hex(4)}"
    channel = SyncChannel(
        redis_url=TEST_REDIS_URL,
        broker_url=TEST_REDIS_URL,
        prefix=prefix,
        control_queue=f"control-{prefix}",
    )
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        with use_channel(channel):
            yield channel
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
        for key in client.scan_iter(f"*{prefix}*"):  # the queues of its hosts
            client.delete(key)
        client.close()
