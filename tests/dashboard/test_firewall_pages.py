"""The router and FWaaS pages render for the people who may see them, and the policy page's
up/down buttons reorder the rules through the actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sgweb.fwaas import actions
from tests.controlplane.fwaas_factories import routed_pair
from tests.dashboard.conftest import World, client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def firewalled(world: World):
    people = world.people
    pair = routed_pair(people.adam, people.alice, people.project_a)
    rules = [
        actions.create_rule(people.alice, people.project_a, name=name, protocol="tcp",
                            destination_port=port, action=action)
        for name, port, action in (("allow-ssh", "22", "allow"), ("deny-db", "5432", "deny"))
    ]  # fmt: skip
    policy = actions.create_policy(
        people.alice, people.project_a, name="prod-egress", firewall_rules=rules
    )
    group = actions.create_group(people.alice, people.project_a, name="app-edge",
                                 egress_policy=policy, ports=[pair.app_port])  # fmt: skip
    return pair, rules, policy, group


def test_every_firewall_page_shows_the_routers_groups_policies_and_rules(world, firewalled):
    pair, _, policy, _ = firewalled
    client = client_for(world.people.alice)
    pages = {
        reverse("dashboard:routers"): ["r1", "network1", "198.51.100.0/24"],
        reverse("dashboard:router", args=[pair.router.pk]): [
            "qr-" + str(pair.app_port.pk)[:11], "app-edge", "prod-egress", "none: everything",
        ],
        reverse("dashboard:firewall_groups"): ["app-edge", "prod-egress", "PENDING"],
        reverse("dashboard:firewall_policies"): ["prod-egress"],
        reverse("dashboard:firewall_policy", args=[policy.pk]): [
            "allow-ssh", "deny-db", "Move down: deny-db will be matched before allow-ssh",
        ],
        reverse("dashboard:firewall_rules"): ["allow-ssh", "deny-db", "prod-egress"],
    }  # fmt: skip
    for url, wanted in pages.items():
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        for piece in wanted:
            assert piece in text, (url, piece)


def test_the_down_button_moves_a_rule_later_and_readers_and_outsiders_cannot(world, firewalled):
    _, rules, policy, _ = firewalled
    url = reverse("dashboard:firewall_policy_move_rule", args=[policy.pk, rules[0].pk])
    assert client_for(world.people.rita).post(url, {"direction": "down"}).status_code == 403
    assert client_for(world.people.charlie).post(url, {"direction": "down"}).status_code == 404
    assert [r.name for r in policy.ordered_rules()] == ["allow-ssh", "deny-db"]
    moved = client_for(world.people.alice).post(url, {"direction": "down"})
    assert moved.status_code == 302
    assert [r.name for r in policy.ordered_rules()] == ["deny-db", "allow-ssh"]


def test_outsiders_see_no_router_of_another_project(world, firewalled):
    pair, _, policy, _ = firewalled
    client = client_for(world.people.charlie)
    assert client.get(reverse("dashboard:router", args=[pair.router.pk])).status_code == 404
    assert client.get(reverse("dashboard:firewall_policy", args=[policy.pk])).status_code == 404
    assert str(pair.router.pk) not in client.get(reverse("dashboard:routers")).content.decode()


def test_the_router_page_lists_its_rules_in_order_and_serves_their_live_counters(
    world, firewalled, monkeypatch
):
    pair, rules, _, _ = firewalled
    client = client_for(world.people.alice)
    text = client.get(reverse("dashboard:router", args=[pair.router.pk])).content.decode()
    assert "Firewall rules, live" in text and "router-hits.js" in text
    assert text.index(f'data-rule-id="{rules[0].pk}"') < text.index(f'data-rule-id="{rules[1].pk}"')
    watched = []

    def agent_counters(host: str) -> dict:
        watched.append(host)
        return {"at": 1.5, "routers": {str(pair.router.pk): {str(rules[1].pk): [7, 420]}}}

    monkeypatch.setattr("sgweb.dashboard.views.firewalls.watch_rule_hits", agent_counters)
    url = reverse("dashboard:router_hits", args=[pair.router.pk])
    answer = client.get(url).json()
    assert answer == {"at": 1.5, "rules": {str(rules[1].pk): {"packets": 7, "bytes": 420}}}
    assert watched == [pair.node.name], "asking keeps the network node's agent reading"
    assert client_for(world.people.charlie).get(url).status_code == 404
