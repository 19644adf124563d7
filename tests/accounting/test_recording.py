"""The control plane counts agents' documents once: totals, first/last hits, every step."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sgweb.accounting import actions
from sgweb.accounting.models import (
    HostAccounting,
    HostSample,
    PortOriginUsage,
    PortSample,
    RuleSample,
    RuleUsage,
)
from sgweb.wire.accounting import DeltasError
from tests.accounting.documents import Agent, alices_lab, dropped, rule_hit

pytestmark = pytest.mark.django_db


def test_a_document_adds_to_the_rule_total_its_hits_and_every_kept_step(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))  # the first reading: a baseline, nothing to add
    actions.record(agent.document([rule_hit(lab, lab.icmp, 4, 336)], [["FORWARD", 8, 672]]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    usage = RuleUsage.objects.get(rule=lab.icmp)
    assert (usage.packets, usage.bytes) == (5, 420)
    assert usage.first_hit_at < usage.last_hit_at
    assert not RuleUsage.objects.filter(rule=lab.ssh).exists()
    steps = sorted(set(RuleSample.objects.filter(rule=lab.icmp).values_list("step", flat=True)))
    assert steps == [10, 60, 3600]
    hourly = RuleSample.objects.filter(rule=lab.icmp, step=3600)
    assert sum(hourly.values_list("packets", flat=True)) == 5
    assert HostSample.objects.get(chain="FORWARD", step=60).packets == 8
    assert HostAccounting.objects.get(host__name="h1").chain_totals == {"FORWARD": [8, 672]}


def test_a_ports_accepted_and_dropped_packets_and_origin_totals_are_kept(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 3, 252), dropped(lab, 2)]))
    sample = PortSample.objects.get(port=lab.port, direction="ingress", step=60)
    assert not PortSample.objects.filter(step=10).exists()  # ports: a minute at finest
    assert (sample.accepted, sample.dropped) == (3, 2)
    kinds = dict(PortOriginUsage.objects.filter(port=lab.port).values_list("kind", "packets"))
    assert kinds == {"sg-rule": 3, "fallback": 2}


def test_a_redelivered_document_is_not_counted_twice(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    doc = agent.document([rule_hit(lab, lab.icmp, 4, 336)])
    assert actions.record(doc).counted
    assert not actions.record(doc).counted
    assert RuleUsage.objects.get(rule=lab.icmp).packets == 4
    assert HostAccounting.objects.get(host__name="h1").dropped_documents == 1


def test_an_agent_restarted_from_an_older_baseline_does_not_count_the_overlap(alice, project_a):
    """It crashed after sending reading 3 but before saving it as its baseline: its new run
    starts from reading 2, so its first document overlaps reading 3 and is dropped."""
    lab = alices_lab(alice, project_a)
    agent = Agent()
    for _ in range(3):
        actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    restarted = Agent(run=agent.run + 3600, at=agent.at + 3600, base=[agent.run, 2])
    assert not actions.record(restarted.document([rule_hit(lab, lab.icmp, 50, 4200)])).counted
    assert actions.record(restarted.document([rule_hit(lab, lab.icmp, 1, 84)])).counted
    assert RuleUsage.objects.get(rule=lab.icmp).packets == 3 + 1
    assert HostAccounting.objects.get(host__name="h1").lost_intervals == 0


def test_an_agent_down_for_an_hour_sends_the_hour_once(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    # The new run starts from the baseline the old one saved: the hour's traffic, once.
    restarted = Agent(run=agent.run + 3600, at=agent.at, base=agent.base)
    result = actions.record(restarted.document([rule_hit(lab, lab.icmp, 360, 30240)], every_s=3600))
    assert result.counted and result.lost_intervals == 0
    assert RuleUsage.objects.get(rule=lab.icmp).packets == 361


def test_lost_documents_are_said_so_and_the_next_one_still_counts(alice, project_a):
    """A Redis restart drops the queue: at most the documents in it are lost, and the host's
    accounting says how many intervals."""
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    agent.document([rule_hit(lab, lab.icmp, 7, 588)])  # sent, then lost with the queue
    result = actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    assert result.counted and result.lost_intervals == 1
    state = HostAccounting.objects.get(host__name="h1")
    assert state.lost_intervals == 1 and state.last_loss_at is not None
    assert RuleUsage.objects.get(rule=lab.icmp).packets == 1


def test_a_malformed_document_is_refused_and_changes_nothing(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    good = agent.document([rule_hit(lab, lab.icmp, 1, 84)])
    for broken in (
        {**good, "reading": "yesterday"},
        {**good, "origins": [["sg-rule", None, None, None, "maybe", 1, 1]]},
        {**good, "origins": [["sg-rule", None, None, None, "accept", -5, 1]]},
        {**good, "chains_waiting": -1},
        {**good, "chains_waiting": "many"},
        {key: value for key, value in good.items() if key != "host"},
    ):
        with pytest.raises(DeltasError):
            actions.record(broken)
    assert not HostAccounting.objects.exists()
    assert not RuleSample.objects.exists()


def test_hits_of_a_deleted_rule_are_ignored(alice, project_a):
    from sgweb.security import actions as security_actions

    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    security_actions.delete_security_group_rule(alice, lab.ssh)
    assert actions.record(agent.document([rule_hit(lab, lab.ssh, 3, 180)])).counted
    assert not RuleSample.objects.exists()


@override_settings(
    SGWEB_ACCOUNTING_RETENTION=((10, 60), (60, 3600)),
    SGWEB_ACCOUNTING_PORT_RETENTION=((10, 60), (60, 3600)),
)
def test_pruning_keeps_each_step_for_its_own_retention(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    now = agent.at + 120  # the 10 s bucket is older than a minute, the 1 min one is not
    assert actions.prune(now) == 2  # the rule's and the port's 10 s buckets
    assert list(RuleSample.objects.values_list("step", flat=True)) == [60]
    assert list(PortSample.objects.values_list("step", flat=True)) == [60]
