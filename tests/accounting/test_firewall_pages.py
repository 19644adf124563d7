"""Firewall rules' kept hits on the pages (issue 16): the rule page and the policy page show the
total, the last hit ('unused for N days' from the kept series) and a sparkline per rule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sgweb.accounting.firewall import record_firewall
from sgweb.accounting.models import FirewallRuleUsage
from sgweb.fwaas import actions as fwaas_actions
from tests.accounting.firewall_documents import NodeAgent, alices_firewall, fw_hit
from tests.accounting.test_pages import json_data, page

pytestmark = pytest.mark.django_db


@pytest.fixture
def fw(alice, project_a):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1", at=timezone.now().timestamp() - 30)
    record_firewall(agent.firewall([]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 4), fw_hit(fw.icmp, 3, router="r2")]))
    return fw


def test_the_policy_page_has_every_rules_sparkline_total_and_last_hit(client, alice, fw):
    html = page(client, alice, f"/firewall-policies/{fw.policy.id}")
    sparks = json_data(html, "firewall-rule-sparks")
    assert sum(sparks["series"][str(fw.icmp.id)]) == 7
    assert sum(sparks["series"][str(fw.deny_db.id)]) == 0
    assert f'data-spark="{fw.icmp.id}"' in html and f'data-spark="{fw.deny_db.id}"' in html
    assert "never hit" in html, "deny-db never matched"
    assert 'aria-current="true">1h<' in html


def test_the_rule_page_shows_its_kept_hits_over_a_switchable_window(client, alice, fw):
    html = page(client, alice, f"/firewall-rules/{fw.icmp.id}?window=1w")
    sparks = json_data(html, "firewall-rule-sparks")
    assert sum(sparks["series"][str(fw.icmp.id)]) == 7 and sparks["step"] == 3600
    assert 'title="7 packets, 588 bytes since the rule was created, every router' in html
    assert 'aria-current="true">1w<' in html


def test_unused_for_n_days_comes_from_the_kept_last_hit(client, alice, fw):
    FirewallRuleUsage.objects.filter(rule=fw.icmp).update(
        last_hit_at=timezone.now() - timedelta(days=9)
    )
    html = page(client, alice, f"/firewall-rules/{fw.icmp.id}")
    assert "unused for 9 d" in html


def test_a_shared_rule_of_another_project_shows_no_hits(client, adam, charlie, project_a,
                                                        project_b, fw):  # fmt: skip
    shared = fwaas_actions.create_rule(adam, project_a, name="shared-ssh", action="allow",
                                       shared=True)  # fmt: skip
    theirs = fwaas_actions.create_policy(charlie, project_b, name="b", firewall_rules=[shared])
    html = page(client, charlie, f"/firewall-policies/{theirs.id}")
    assert "data-hits-hidden" in html and json_data(html, "firewall-rule-sparks")["series"] == {}
    html = page(client, charlie, f"/firewall-rules/{shared.id}")
    assert "its own project's to read" in html and "firewall-rule-sparks" not in html


def test_a_network_nodes_host_page_says_where_its_firewall_accounting_stands(client, rita):
    agent = NodeAgent(host="network1", at=timezone.now().timestamp() - 30)
    record_firewall(agent.firewall([]))
    agent.firewall([])  # lost with the queue
    record_firewall(agent.firewall([["fw-default-drop", None, "r1", "g", "egress", "drop", 5, 5]]))
    html = page(client, rita, "/hosts/network1")
    assert 'data-firewall-lost-intervals="1"' in html
    assert "fw-default-drop 5 packets" in html
