"""Fixtures shared by the live and traces tiers (their conftests import them): a small world,
project alpha with a network, group "web" and two ports on host compute1 (through the actions,
as users would), no dispatch, and a Redis of the test's own for the live websockets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sgweb.hostsync import compiled
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup
from tests.controlplane import factories
from tests.dispatching import record_dispatch


@dataclass
class World:
    group: SecurityGroup
    ssh_rule_id: str
    ping_rule_id: str
    web: Port
    db: Port
    host: str = "compute1"


@pytest.fixture(autouse=True)
def no_dispatch(monkeypatch) -> list:
    compiled.forget()
    return record_dispatch(monkeypatch)["events"]


@pytest.fixture
def world(alice, adam, project_a) -> World:
    from sgweb.security import actions as security_actions

    network, _subnet = factories.network_with_subnet(alice, project_a, cidr="192.0.2.0/24")
    group = factories.group(alice, project_a, "web")
    ssh = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22,
        port_range_max=22, remote_ip_prefix="198.51.100.0/24",
    )  # fmt: skip
    ping = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="icmp", remote_ip_prefix="0.0.0.0/0"
    )
    web = factories.port(
        adam, project_a, network, name="web1", security_groups=[str(group.id)], host="compute1"
    )
    db = factories.port(
        adam, project_a, network, name="db1", security_groups=[str(group.id)], host="compute1"
    )
    return World(group, str(ssh.id), str(ping.id), web, db)


TEST_REDIS_DB = 12


@pytest.fixture
def live_redis(settings, monkeypatch):
    """A Redis database and key prefix of this test's own, for the Channels layer and for the
    watch keys / counter channels (through `use_channel`); every key removed afterwards.
    Live events are on: they go to this test's own layer."""
    import os
    import secrets

    import redis
    from channels.layers import channel_layers

    from sgweb.hostsync.channel import SyncChannel, use_channel

    url = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": url, "socket_timeout": 15}], "prefix": prefix},
        }
    }
    from sgweb import dispatch
    from sgweb.live.events import channels_sender

    settings.SGWEB_LIVE_EVENTS = True
    monkeypatch.setattr(dispatch, "_event_sender", channels_sender)
    channel_layers.backends.clear()
    client = redis.Redis.from_url(url)
    with use_channel(SyncChannel(redis_url=url, broker_url=url, prefix=prefix)):
        yield client, prefix
    channel_layers.backends.clear()
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()
