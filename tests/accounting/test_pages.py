"""The kept accounting on the pages: sparklines, totals, 'unused for N days', port and host."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from sgweb.accounting import actions
from sgweb.accounting.models import RuleUsage
from sgweb.networks.models import Host
from sgweb.security.models import SecurityGroupRule
from tests.accounting.documents import Agent, alices_lab, dropped, rule_hit
from tests.personas import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent(at=timezone.now().timestamp() - 30)
    actions.record(agent.document([]))
    actions.record(
        agent.document([rule_hit(lab, lab.icmp, 4, 336), dropped(lab, 2)], [["FORWARD", 8, 672]])
    )
    return lab


def page(client, user, url: str) -> str:
    assert client.login(username=user.username, password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def json_data(html: str, element_id: str) -> dict:
    pattern = rf'<script id="{element_id}" type="application/json">(.*?)</script>'
    found = re.search(pattern, html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


def test_the_group_page_has_a_sparkline_and_the_kept_total_of_every_rule(client, alice, lab):
    html = page(client, alice, f"/security-groups/{lab.group.id}")
    sparks = json_data(html, "rule-sparks")
    assert sum(sparks["series"][str(lab.icmp.id)]) == 4
    assert sum(sparks["series"][str(lab.ssh.id)]) == 0
    assert len(sparks["t"]) <= 120
    assert f'data-spark="{lab.icmp.id}"' in html
    assert 'data-kept-packets="4"' in html
    assert "vendor/uplot/uPlot.iife.min.js" in html and "cdn" not in html.lower()


def test_unused_for_n_days_comes_from_the_kept_last_hit_not_from_a_watch(client, alice, lab):
    RuleUsage.objects.filter(rule=lab.icmp).update(last_hit_at=timezone.now() - timedelta(days=9))
    SecurityGroupRule.objects.filter(pk=lab.ssh.pk).update(
        created_at=timezone.now() - timedelta(days=3)
    )
    html = page(client, alice, f"/security-groups/{lab.group.id}")
    assert "unused for 9 d" in html
    assert "never hit · 3 d" in html


def test_the_window_switch_picks_a_day_or_a_week_and_ignores_nonsense(client, alice, lab):
    for key, step in (("1d", 3600), ("1w", 3600), ("forever", 60)):
        html = page(client, alice, f"/security-groups/{lab.group.id}?window={key}")
        assert json_data(html, "rule-sparks")["step"] == step


def test_the_port_page_charts_accepted_and_dropped_packets_per_direction(client, alice, lab):
    html = page(client, alice, f"/ports/{lab.port.id}")
    chart = json_data(html, "port-traffic")
    labels = {s["label"]: sum(s["values"]) for s in chart["series"]}
    assert labels == {"ingress accepted": 4, "ingress dropped": 2, "egress accepted": 0,
                      "egress dropped": 0}  # fmt: skip
    assert "4 accepted · 2 dropped" in html


def test_the_host_page_shows_the_forward_chains_count_to_those_who_see_every_project(
    client, rita, alice, lab
):
    Host.objects.get_or_create(name="h1")
    html = page(client, rita, "/hosts/h1")
    assert 'data-host-chain="FORWARD" data-packets="8"' in html
    assert json_data(html, "host-chains-data")["series"][0]["label"] == "FORWARD"
    client.logout()
    assert "data-host-chain" not in page(client, alice, "/hosts/h1")


def test_the_host_page_and_metrics_say_when_readings_leave_chains_to_the_next(
    client, rita, alice, project_a
):
    """An agent whose readings have more chains to read than their time budget covers says how
    many wait; the host page and /metrics repeat it, and say the hits come later, not never."""
    lab = alices_lab(alice, project_a)
    agent = Agent(at=timezone.now().timestamp() - 30)
    actions.record(agent.document([]))
    busy = agent.document([rule_hit(lab, lab.icmp, 4, 336)])
    actions.record({**busy, "chains_waiting": 1234})
    html = page(client, rita, "/hosts/h1")
    assert 'data-chains-waiting="1234"' in html and "read in turns" in html
    client.logout()
    assert (
        client.get("/metrics")
        .content.decode()
        .count('sgweb_accounting_chains_waiting{host="h1"} 1234.0')
        == 1
    )
    actions.record(agent.document([]))  # the next reading had time for everything
    assert "data-chains-waiting" not in page(client, rita, "/hosts/h1")
