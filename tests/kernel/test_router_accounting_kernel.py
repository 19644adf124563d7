"""Firewall rules' kept accounting on a real kernel (issue 16): real pings cross a router and hit
a firewall rule; the network node's accounting read sends the deltas, the control plane keeps
them and its API shows them; then another rule is inserted at the top of the policy (an
in-place edit of the chain), and the earlier pings are still counted, once: the kernel carried
the counter, the agent's identity-keyed baseline saw no reset. A restarted reader resumes from
the baseline it left in Redis without counting anything twice.
"""

from __future__ import annotations

from typing import Any

import pytest

from sgweb.accounting.firewall import record_firewall
from sgweb.firewall.fwaas.model import ALLOW, DENY, FirewallGroup, FirewallPolicy, FirewallRule
from sgweb.fwaas import actions as fwaas_actions
from sgweb.fwaas.models import FirewallRule as FirewallRuleRow
from tests.controlplane.api_helpers import NeutronClient
from tests.firewall.fwaas.example import ROUTER, WEB
from tests.kernel.test_router_agent_kernel import APP_VM, NetworkNode, _ping_eventually, node
from tests.personas import alice, project_a
from worker.router_accounting import RouterAccountingReader

pytestmark = [pytest.mark.kernel, pytest.mark.redis, pytest.mark.django_db]
__all__ = ["alice", "node", "project_a"]  # fixtures, reused


def as_state(*rules: FirewallRuleRow) -> FirewallGroup:
    """The group on the web interface, its egress policy holding `rules` in order."""
    policy = FirewallPolicy(
        id="p-web-egress", name="web-egress",
        rules=tuple(FirewallRule(id=str(r.id), name=r.name, protocol=r.protocol,
                                 destination_port=r.destination_port, action=r.action)
                    for r in rules),
    )  # fmt: skip
    return FirewallGroup(id="fg-web", name="web-fw", egress_policy=policy, ports=(WEB.port_id,))


def reader_for(
    node: NetworkNode, sent: list[dict[str, Any]], netlink: bool = True
) -> RouterAccountingReader:
    def send(document: dict[str, Any]) -> None:
        sent.append(document)
        record_firewall(document)  # what the control worker's task does with it

    store = node.agent.store
    reader = RouterAccountingReader(node.agent, store.client, store.keys.prefix, send, 10.0)
    if not netlink:
        reader.reader.use_netlink = False  # the iptables-save fallback
    return reader


def pings(node: NetworkNode, count: int) -> int:
    return sum(node.lab.ping(node.web, APP_VM).ok for _ in range(count))


def kept_packets(alice, rule: FirewallRuleRow) -> int:
    response = NeutronClient(alice).get(f"/fwaas/firewall_rules/{rule.id}/hits", {"window": "1h"})
    assert response.status_code == 200, response.content
    return response.json()["firewall_rule_hits"]["packets"]


@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "iptables-save"])
def test_pings_across_a_router_are_kept_per_firewall_rule_across_an_inserted_rule(
    node: NetworkNode, alice, project_a, netlink: bool
) -> None:
    ping = fwaas_actions.create_rule(alice, project_a, name="ping", protocol="icmp",
                                     action=ALLOW)  # fmt: skip
    rest = fwaas_actions.create_rule(alice, project_a, name="rest", action=ALLOW)
    ssh = fwaas_actions.create_rule(alice, project_a, name="no-ssh", protocol="tcp",
                                    destination_port="22", action=DENY)  # fmt: skip
    assert node.agent.sync(node.publish(as_state(ping, rest)), "test").action == "applied"
    assert _ping_eventually(node, True, node.web, APP_VM)
    sent: list[dict[str, Any]] = []
    reader = reader_for(node, sent, netlink)
    assert reader.tick() is not None and sent[-1]["base"] is None, "the baseline"
    assert reader.reader.use_netlink is netlink and reader.reader.chains_read >= 3

    answered = pings(node, 4)
    assert answered >= 3
    document = reader.tick()
    assert document is not None and document.base is not None
    kinds = {(d.kind, d.rule_id) for d in document.rules}
    assert ("fw-rule", str(ping.id)) in kinds and ("fw-established", None) in kinds
    assert all(d.router_id == ROUTER.id and d.group_id == "fg-web" for d in document.rules)
    first = kept_packets(alice, ping)
    assert first >= answered
    assert kept_packets(alice, rest) == 0

    # Another rule on top: the chain is edited in place, the ping rule's counter moves down one.
    inserted = node.agent.sync(node.publish(as_state(ssh, ping, rest)), "insert")
    assert inserted.action == "applied" and node.reports[-1]["mode"] == "incremental"
    kernel = {h.origin.rule_name: h.counter.packets for h in node.agent.rule_hits()[ROUTER.id]}
    assert kernel["ping"] >= first, "the kernel carried the counter"
    document = reader.tick()
    assert document is not None and document.resets == 0
    assert kept_packets(alice, ping) == first, "nothing counted twice, nothing lost"

    more = pings(node, 2)
    reader.tick()
    assert kept_packets(alice, ping) >= first + more
    after = kept_packets(alice, ping)

    # The agent restarts: the next reader starts from the baseline the last one saved.
    restarted = reader_for(node, sent, netlink)
    again = pings(node, 1)
    document = restarted.tick()
    assert document is not None and document.base == (reader.accountant.run, reader.accountant.seq)
    assert after + again <= kept_packets(alice, ping) <= after + again + 1
    assert kept_packets(alice, ssh) == 0
