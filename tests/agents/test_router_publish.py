"""Publishing a network node's router state (issue 16): revisions, digest, nudges (real Redis)."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from sgweb.firewall.fwaas import codec
from sgweb.firewall.fwaas.model import NetworkNodeState
from sgweb.hostsync import routers_publish
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol
from tests.firewall.fwaas.example import STATE

pytestmark = pytest.mark.redis

NODE = NetworkNodeState(host="network1", routers=(STATE,))


def stored(channel, host: str) -> protocol.Desired:  # type: ignore[no-untyped-def]
    raw = channel.redis.get(wire.router_keys(host, channel.prefix).desired)
    return wire.parse_desired(raw)


def test_each_router_change_gets_a_higher_revision_and_the_digest_of_its_state(
    sync_channel,
) -> None:
    first = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    changed = NetworkNodeState(host="network1", routers=(replace(STATE, firewall_groups=()),))
    second = routers_publish.publish_network_node("network1", changed, via=sync_channel)
    assert first.outcome == second.outcome == routers_publish.STORED
    assert second.revision > first.revision
    document = stored(sync_channel, "network1")
    assert document.revision == second.revision
    assert document.digest == codec.digest(codec.dumps(changed)) == second.digest
    assert codec.from_dict(document.state) == codec.canonical(changed)


def test_router_revisions_are_counted_apart_from_the_port_chains(sync_channel) -> None:
    port_keys = sync_channel.keys("network1")
    sync_channel.redis.set(port_keys.revision, 500)
    result = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    assert result.revision == 1
    assert sync_channel.redis.get(port_keys.desired) is None


def test_the_same_state_again_stores_nothing_new(sync_channel) -> None:
    first = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    again = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    assert again.outcome == routers_publish.UNCHANGED and again.revision == first.revision


def test_an_older_revision_never_overwrites_a_newer_one(sync_channel) -> None:
    keys = wire.router_keys("network1", sync_channel.prefix)
    sync_channel.redis.set(keys.revision, 10)
    sync_channel.redis.set(keys.desired_revision, 20)  # a racing publisher stored 20 already
    result = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    assert result.outcome == routers_publish.OLDER and result.revision == 20


def test_after_redis_lost_the_counter_revisions_continue_above_what_the_agent_applied(
    sync_channel,
) -> None:
    keys = wire.router_keys("network1", sync_channel.prefix)
    sync_channel.redis.set(keys.applied, json.dumps({"revision": 41, "ok": True}))
    result = routers_publish.publish_network_node("network1", NODE, via=sync_channel)
    assert result.revision == 42


def test_a_state_of_another_host_is_refused(sync_channel) -> None:
    with pytest.raises(ValueError, match="network1"):
        routers_publish.publish_network_node("network2", NODE, via=sync_channel)


def test_a_publish_nudges_the_node_on_its_router_channel_and_queues_no_task(
    sync_channel,
) -> None:
    host = f"nudge-{sync_channel.prefix}"
    node = NetworkNodeState(host=host, routers=(STATE,))
    listener = sync_channel.redis.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(wire.router_keys(host, sync_channel.prefix).nudge)
    try:
        result = routers_publish.publish_network_node(host, node, "rule added", via=sync_channel)
        again = routers_publish.publish_network_node(host, node, "nothing new", via=sync_channel)
        told: list[int | None] = []
        deadline = time.monotonic() + 5
        while len(told) < 2 and time.monotonic() < deadline:
            message = listener.get_message(timeout=0.5)  # None for the subscribe confirmation
            if message:
                told.append(protocol.parse_nudge(message["data"]))
    finally:
        listener.close()
    assert again.outcome == routers_publish.UNCHANGED
    assert told == [result.revision, result.revision]  # nothing new stored: told again anyway
    assert sync_channel.redis.llen(protocol.host_queue(host)) == 0


def test_a_router_apply_report_reaches_every_listener_even_when_one_fails(monkeypatch) -> None:
    heard: list[dict] = []

    def broken(report: dict) -> None:
        raise RuntimeError("a listener's bug")

    monkeypatch.setattr(routers_publish, "router_apply_listeners", [broken, heard.append])
    report = {"host": "network1", "revision": 3, "ok": False, "error": "line 2 failed"}
    routers_publish.record_router_apply(report)
    assert heard == [report]
