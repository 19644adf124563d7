"""A network node's firewall documents kept per firewall rule (issue 16): totals over routers,
first and last hits, every step, never counted twice, lost intervals said, pruned."""

from __future__ import annotations

import pytest

from sgweb.accounting import actions
from sgweb.accounting.firewall import record_firewall
from sgweb.accounting.models import FirewallAccounting, FirewallRuleSample, FirewallRuleUsage
from sgweb.fwaas import actions as fwaas_actions
from sgweb.wire.accounting import DeltasError
from tests.accounting.firewall_documents import NodeAgent, alices_firewall, fw_builtin, fw_hit

pytestmark = pytest.mark.django_db


def test_a_rules_hits_are_summed_over_routers_with_every_kept_step(alice, project_a, settings):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    assert record_firewall(agent.firewall([])).counted
    record_firewall(agent.firewall([fw_hit(fw.icmp, 3), fw_hit(fw.icmp, 2, router="r2")]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 1, direction="ingress")]))
    usage = FirewallRuleUsage.objects.get(rule=fw.icmp)
    assert (usage.packets, usage.bytes) == (6, 6 * 84)
    assert usage.first_hit_at < usage.last_hit_at
    steps = {step for step, _keep in settings.SGWEB_ACCOUNTING_RETENTION}
    samples = FirewallRuleSample.objects.filter(rule=fw.icmp)
    assert {s.step for s in samples} == steps
    for step in steps:
        assert sum(s.packets for s in samples if s.step == step) == 6
    assert not FirewallRuleUsage.objects.filter(rule=fw.deny_db).exists(), "never hit"


def test_the_built_in_origins_are_kept_per_node(alice, project_a):
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    record_firewall(agent.firewall([fw_builtin("fw-default-drop", 4), fw_builtin("fw-invalid", 1)]))
    record_firewall(agent.firewall([fw_builtin("fw-default-drop", 2, router="r2")]))
    state = FirewallAccounting.objects.get(host__name="network1")
    assert state.builtin_totals == {"fw-default-drop": [6, 504], "fw-invalid": [1, 84]}


def test_a_redelivered_document_is_not_counted_twice(alice, project_a):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    document = agent.firewall([fw_hit(fw.icmp, 3)])
    assert record_firewall(document).counted
    assert not record_firewall(document).counted
    assert FirewallRuleUsage.objects.get(rule=fw.icmp).packets == 3
    assert FirewallAccounting.objects.get(host__name="network1").dropped_documents == 1


def test_the_firewall_stream_is_numbered_apart_from_the_port_chains(alice, project_a):
    """A host with ports and routers: each stream's readings follow on from its own."""
    fw = alices_firewall(alice, project_a)
    ports, routers = NodeAgent(host="both1"), NodeAgent(host="both1", run=2_000_000_000.0)
    actions.record(ports.document([]))
    record_firewall(routers.firewall([]))
    actions.record(ports.document([]))
    assert record_firewall(routers.firewall([fw_hit(fw.icmp, 2)])).counted
    assert FirewallAccounting.objects.get(host__name="both1").lost_intervals == 0


def test_lost_documents_are_said_so_and_the_next_one_still_counts(alice, project_a):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    agent.firewall([fw_hit(fw.icmp, 5)])  # lost with the queue
    recorded = record_firewall(agent.firewall([fw_hit(fw.icmp, 1)]))
    assert recorded.counted and recorded.lost_intervals == 1
    assert FirewallRuleUsage.objects.get(rule=fw.icmp).packets == 1


def test_a_malformed_document_is_refused_and_changes_nothing(alice, project_a):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    bad = agent.firewall([fw_hit(fw.icmp, -1)])
    with pytest.raises(DeltasError):
        record_firewall(bad)
    with pytest.raises(DeltasError):
        record_firewall({**agent.firewall([]), "rules": [["sg-rule", None, "r1", "g", None,
                                                         "accept", 1, 1]]})  # fmt: skip
    assert not FirewallAccounting.objects.exists()


def test_hits_of_a_deleted_rule_are_ignored(alice, project_a):
    fw = alices_firewall(alice, project_a)
    gone = fwaas_actions.create_rule(alice, project_a, name="gone", action="deny")
    gone_id = gone.id
    fwaas_actions.delete_rule(alice, gone)
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 1), ["fw-rule", str(gone_id), "r1", "g",
                                                           "egress", "drop", 9, 9]]))  # fmt: skip
    assert not FirewallRuleSample.objects.filter(rule_id=gone_id).exists()
    assert FirewallRuleUsage.objects.get(rule=fw.icmp).packets == 1


def test_pruning_keeps_each_firewall_step_for_its_own_retention(alice, project_a, settings):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 1)]))
    (ten_s, ten_s_keep), *_ = settings.SGWEB_ACCOUNTING_RETENTION
    now = agent.at + ten_s_keep + ten_s * 2
    actions.prune(now)
    assert not FirewallRuleSample.objects.filter(rule=fw.icmp, step=ten_s).exists()
    assert FirewallRuleSample.objects.filter(rule=fw.icmp).exclude(step=ten_s).exists()
