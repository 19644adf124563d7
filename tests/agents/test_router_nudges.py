"""A router publish's nudge on the network node's Redis router channel, heard by the agent's
listener (real Redis, real publishes; the kernel is a FakeRunner). The port path's version is
tests/agents/test_nudges.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from sgweb.firewall.fwaas.model import ALLOW, FirewallPolicy, FirewallRule, NetworkNodeState
from sgweb.hostsync import routers_publish
from sgweb.hostsync.channel import SyncChannel
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol
from tests.fakerunner import FakeRunner
from tests.firewall.fwaas.example import STATE, WEB_GROUP_OBJ
from worker.nudges import NudgeListener
from worker.router_io import RedisRouterStore
from worker.routers import RouterAgent

pytestmark = pytest.mark.redis

HOST = "network1"


def node(port: int) -> NetworkNodeState:
    """The worked example's router, its web side allowing only tcp `port`."""
    policy = FirewallPolicy(
        id="p-web",
        rules=(FirewallRule(id=f"r-{port}", protocol="tcp", destination_port=str(port),
                            action=ALLOW),),
    )  # fmt: skip
    group = replace(WEB_GROUP_OBJ, egress_policy=policy)
    others = tuple(g for g in STATE.firewall_groups if g.id != group.id)
    return NetworkNodeState(HOST, (replace(STATE, firewall_groups=(*others, group)),))


@dataclass
class PortAgent:
    """The port chains' side of the listener, recording what it is asked to do."""

    applied: Any = None
    syncs: list[int | None] = field(default_factory=list)

    def sync(self, revision: int | None = None, reason: str = "") -> None:
        self.syncs.append(revision)


@pytest.fixture
def router_agent(sync_channel: SyncChannel) -> tuple[RouterAgent, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []
    store = RedisRouterStore(sync_channel.redis_url, HOST, sync_channel.prefix)
    return RouterAgent(HOST, store, FakeRunner(), reports.append, netns_prefix="t-"), reports


@pytest.fixture
def port_agent() -> PortAgent:
    return PortAgent()


@pytest.fixture
def listening(sync_channel, router_agent, port_agent) -> Iterator[NudgeListener]:
    listener = NudgeListener(
        port_agent, sync_channel.redis_url, HOST, sync_channel.prefix, routers=router_agent[0]
    )
    try:
        yield listener
    finally:
        listener.stop()
        listener.join(timeout=5)


def wait_until(what: str, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def applied_revision(agent: RouterAgent) -> int:
    return agent.applied.revision if agent.applied else 0


def test_a_listening_network_node_applies_the_router_revision_a_publish_nudges_it_about(
    sync_channel, router_agent, port_agent, listening
) -> None:
    agent, reports = router_agent
    routers_publish.publish_network_node(HOST, node(80), via=sync_channel)
    assert agent.full_sync("start").action == "applied"
    listening.start()
    wait_until("the subscriptions", listening.subscribed.is_set)
    told = routers_publish.publish_network_node(HOST, node(443), "rule added", via=sync_channel)
    wait_until("the nudged revision applied", lambda: applied_revision(agent) == told.revision)
    assert agent.applied and agent.applied.digest == told.digest
    assert reports[-1]["ok"] and reports[-1]["reason"] == f"nudged (revision {told.revision})"
    assert listening.heard == 1 and port_agent.syncs == []  # the port chains were not bothered


def test_a_network_node_that_missed_a_router_nudge_reads_the_newest_state_when_it_subscribes(
    sync_channel, router_agent, listening
) -> None:
    agent, _ = router_agent
    routers_publish.publish_network_node(HOST, node(80), via=sync_channel)
    agent.full_sync("start")
    told = routers_publish.publish_network_node(HOST, node(443), "while away", via=sync_channel)
    assert applied_revision(agent) < told.revision  # nobody heard that nudge
    listening.start()  # Redis kept nothing for the listener: the agent reads Redis
    wait_until("the missed revision applied", lambda: applied_revision(agent) == told.revision)
    assert listening.heard == 0


def test_before_its_first_apply_a_subscribing_node_leaves_the_start_up_sync_to_maintenance(
    sync_channel, router_agent, listening
) -> None:
    agent, reports = router_agent
    routers_publish.publish_network_node(HOST, node(80), via=sync_channel)
    listening.start()
    wait_until("the subscriptions", listening.subscribed.is_set)
    time.sleep(0.1)
    assert agent.applied is None and reports == []


def test_router_nudges_from_two_publishers_in_any_order_never_apply_an_older_revision(
    sync_channel, router_agent, listening
) -> None:
    agent, reports = router_agent
    routers_publish.publish_network_node(HOST, node(7999), via=sync_channel)
    agent.full_sync("start")
    listening.start()
    wait_until("the subscriptions", listening.subscribed.is_set)
    publishers = [
        SyncChannel(sync_channel.redis_url, sync_channel.broker_url, sync_channel.prefix)
        for _ in range(2)
    ]
    channel = wire.router_keys(HOST, sync_channel.prefix).nudge
    told: list[int] = []
    try:
        for i, port in enumerate(range(8000, 8012)):  # the two publishers take turns
            result = routers_publish.publish_network_node(
                HOST, node(port), f"change {i}", via=publishers[i % 2]
            )
            told.append(result.revision)
            if len(told) > 1:  # the other publisher's nudge for the revision before, late
                publishers[(i + 1) % 2].redis.publish(channel, protocol.nudge_message(told[-2]))
    finally:
        for publisher in publishers:
            publisher.close()
    newest = wire.parse_desired(
        sync_channel.redis.get(wire.router_keys(HOST, sync_channel.prefix).desired)
    )
    wait_until("the newest revision applied", lambda: applied_revision(agent) == newest.revision)
    time.sleep(0.2)  # the late nudges still in flight
    revisions = [r["revision"] for r in reports if r["ok"]]
    assert revisions == sorted(set(revisions)) and revisions[-1] == newest.revision
    assert agent.applied and agent.applied.digest == newest.digest
