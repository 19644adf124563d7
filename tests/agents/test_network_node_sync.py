"""Router and firewall changes reach the network nodes' Redis keys after commit, the reconciler
repairs a lost publish, and the agents' apply reports set the groups' status (issue 16).

Real Redis (a key space of its own per test) and the test database.
"""

from __future__ import annotations

import pytest

from sgweb.firewall.fwaas import codec
from sgweb.fwaas import actions as fw_actions
from sgweb.fwaas.desired_state import network_node_state
from sgweb.fwaas.models import FirewallGroup
from sgweb.fwaas.representation import group_to_dict
from sgweb.hostsync import network_nodes
from sgweb.hostsync.reconcile import reconcile
from sgweb.hostsync.routers_publish import record_router_apply
from sgweb.wire import routers as wire
from tests.controlplane.fwaas_factories import routed_pair
from tests.personas import *  # noqa: F403

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def publishing(settings):
    settings.SGWEB_PUBLISH_TO_HOSTS = True


def stored_digest(channel, host: str) -> str | None:
    raw = channel.redis.get(wire.router_keys(host, channel.prefix).desired_digest)
    return raw.decode() if raw else None


def node_digest(host: str) -> str:
    return codec.digest(codec.dumps(network_node_state(host)))


def test_a_committed_router_change_stores_the_nodes_new_router_state(
    sync_channel, adam, alice, project_a
) -> None:
    pair = routed_pair(adam, alice, project_a)
    assert stored_digest(sync_channel, pair.node.name) == node_digest(pair.node.name)
    rule = fw_actions.create_rule(alice, project_a, name="deny-db", action="deny")
    policy = fw_actions.create_policy(alice, project_a, name="edge", firewall_rules=[rule])
    fw_actions.create_group(alice, project_a, ingress_policy=policy, ports=[pair.app_port])
    state = network_node_state(pair.node.name)
    assert state.routers[0].firewall_groups, "the group is in the node's state"
    assert stored_digest(sync_channel, pair.node.name) == node_digest(pair.node.name)


def test_the_reconciler_publishes_a_node_whose_stored_router_state_is_lost(
    sync_channel, adam, alice, project_a
) -> None:
    pair = routed_pair(adam, alice, project_a)
    sync_channel.redis.delete(wire.router_keys(pair.node.name, sync_channel.prefix).desired_digest)
    result = reconcile(via=sync_channel)
    assert result.routers.get(pair.node.name) == "published"
    assert stored_digest(sync_channel, pair.node.name) == node_digest(pair.node.name)
    assert reconcile(via=sync_channel).routers == {}


def test_a_failed_router_apply_shows_the_group_in_error_until_an_apply_succeeds(
    sync_channel, adam, alice, project_a
) -> None:
    pair = routed_pair(adam, alice, project_a)
    pair.node.status = "in-sync"
    pair.node.save()
    group = fw_actions.create_group(alice, project_a, ports=[pair.web_port])
    assert group_to_dict(group)["status"] == "ACTIVE"
    network_nodes.install()
    record_router_apply({"host": pair.node.name, "revision": 3, "ok": False, "error": "no"})
    assert group_to_dict(FirewallGroup.objects.get())["status"] == "ERROR"
    record_router_apply({"host": pair.node.name, "revision": 2, "ok": True})  # an older one
    assert group_to_dict(FirewallGroup.objects.get())["status"] == "ERROR"
    record_router_apply({"host": pair.node.name, "revision": 4, "ok": True})
    assert group_to_dict(FirewallGroup.objects.get())["status"] == "ACTIVE"
