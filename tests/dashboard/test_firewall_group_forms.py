"""Firewall groups are created on router interfaces with their policies, edited (policies,
ports, admin state) and deleted from their pages, through the fwaas actions; the network
nodes hear of it; readers get no forms and a 403, outsiders a 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallGroup
from sgweb.tenancy.models import Membership
from tests.dashboard.conftest import World, client_for
from tests.dashboard.firewall_world import Firewalled, audited, firewalled
from tests.dispatching import record_dispatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def fw(world: World) -> Firewalled:
    return firewalled(world.people)


def _ports(group: FirewallGroup) -> set[str]:
    return {str(link.port_id) for link in group.port_links.all()}


def test_a_member_creates_a_group_on_a_router_interface_with_both_policies(world, fw):
    client = client_for(world.people.alice)
    page = client.get(reverse("dashboard:firewall_group_new")).content.decode()
    assert f'value="{fw.pair.web_port.pk}"' in page and "app-edge" in page, "who holds a port"
    answer = client.post(
        reverse("dashboard:firewall_group_new"),
        {
            "project": str(world.people.project_a.pk),
            "name": "web-edge",
            "ingress_policy": str(fw.policy.pk),
            "egress_policy": str(fw.policy.pk),
            "ports": [str(fw.pair.web_port.pk)],
            "admin_state_up": "on",
        },
    )
    group = FirewallGroup.objects.get(name="web-edge")
    assert answer["Location"] == reverse("dashboard:firewall_group", args=[group.pk])
    assert (group.ingress_policy_id, group.egress_policy_id) == (fw.policy.pk, fw.policy.pk)
    assert _ports(group) == {str(fw.pair.web_port.pk)} and group.admin_state_up
    assert audited("firewall_group", group.pk) == ["create"]
    text = client.get(answer["Location"]).content.decode()
    assert "qr-" + str(fw.pair.web_port.pk)[:11] in text and "PENDING" in text


def test_a_port_of_another_group_is_refused_on_the_form_and_nothing_is_created(world, fw):
    answer = client_for(world.people.alice).post(
        reverse("dashboard:firewall_group_new"),
        {"project": str(world.people.project_a.pk), "name": "greedy",
         "ports": [str(fw.pair.app_port.pk)]},
        headers={"X-Requested-With": "fetch"},
    )  # fmt: skip
    assert answer.status_code == 409
    assert "is in another group" in answer.json()["errors"]["ports"][0]
    assert not FirewallGroup.objects.filter(name="greedy").exists()


def test_a_group_cannot_use_another_projects_policy(world, fw):
    people = world.people
    theirs = actions.create_policy(people.charlie, people.project_b, name="theirs")
    answer = client_for(people.alice).post(
        reverse("dashboard:firewall_group_update", args=[fw.group.pk]),
        {"name": "app-edge", "ingress_policy": str(theirs.pk), "admin_state_up": "on",
         "ports": [str(fw.pair.app_port.pk)]},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "Choose a policy of this project or a shared one." in answer.content.decode()
    fw.group.refresh_from_db()
    assert fw.group.ingress_policy_id is None
    assert audited("firewall_group", fw.group.pk) == ["create"]


def test_editing_moves_the_group_and_turns_it_down_and_tells_the_network_node(
    world, fw, monkeypatch, django_capture_on_commit_callbacks
):
    client = client_for(world.people.alice)
    sent = record_dispatch(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
        reverse("dashboard:firewall_group_update", args=[fw.group.pk]),
            {"name": "app-edge", "description": "moved", "ingress_policy": str(fw.policy.pk),
             "egress_policy": "", "ports": [str(fw.pair.web_port.pk)]},
        )  # fmt: skip
    assert answer.status_code == 302
    fw.group.refresh_from_db()
    assert _ports(fw.group) == {str(fw.pair.web_port.pk)}
    assert (fw.group.ingress_policy_id, fw.group.egress_policy_id) == (fw.policy.pk, None)
    assert fw.group.admin_state_up is False and fw.group.description == "moved"
    assert audited("firewall_group", fw.group.pk) == ["create", "update"]
    assert [hosts for hosts, _ in sent["network_nodes"]] == [[fw.pair.node.name]]
    page = client.get(reverse("dashboard:firewall_group", args=[fw.group.pk])).content.decode()
    assert "DOWN" in page and "admin state down" in page


def test_deleting_a_group_frees_its_interfaces(world, fw):
    client = client_for(world.people.alice)
    answer = client.post(reverse("dashboard:firewall_group_delete", args=[fw.group.pk]))
    assert answer["Location"] == reverse("dashboard:firewall_groups")
    assert not FirewallGroup.objects.filter(pk=fw.group.pk).exists()
    assert audited("firewall_group", fw.group.pk) == ["create", "delete"]
    router = client.get(reverse("dashboard:router", args=[fw.pair.router.pk])).content.decode()
    assert router.count("none: everything passes") == 2, "both interfaces pass everything"


def test_a_reader_sees_the_group_without_forms_and_an_outsider_not_at_all(world, fw):
    reader = client_for(world.people.rita)
    page = reader.get(reverse("dashboard:firewall_group", args=[fw.group.pk])).content.decode()
    assert "prod-egress" in page and "You are a reader" in page
    edit = reverse("dashboard:firewall_group_update", args=[fw.group.pk])
    delete = reverse("dashboard:firewall_group_delete", args=[fw.group.pk])
    assert edit not in page and delete not in page
    assert "New group" not in reader.get(reverse("dashboard:firewall_groups")).content.decode()
    assert reader.get(reverse("dashboard:firewall_group_new")).status_code == 403
    assert reader.post(edit, {"name": "x"}).status_code == 403
    assert reader.post(delete).status_code == 403
    outsider = client_for(world.people.charlie)
    assert outsider.get(reverse("dashboard:firewall_group", args=[fw.group.pk])).status_code == 404
    assert outsider.post(edit, {"name": "x"}).status_code == 404
    assert outsider.post(delete).status_code == 404
    fw.group.refresh_from_db()
    assert fw.group.name == "app-edge" and _ports(fw.group) == {str(fw.pair.app_port.pk)}


def test_a_member_of_two_projects_cannot_put_the_other_projects_interface_in_a_group(world, fw):
    people = world.people
    Membership.objects.create(user=people.alice, project=people.project_b)
    alice = User.objects.get(pk=people.alice.pk)  # her projects are cached on the old object
    answer = client_for(alice).post(
        reverse("dashboard:firewall_group_new"),
        {"project": str(people.project_b.pk), "name": "b-edge",
         "ports": [str(fw.pair.web_port.pk)]},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "Choose router interfaces of the group&#x27;s project." in answer.content.decode()
    assert not FirewallGroup.objects.filter(name="b-edge").exists()


def test_an_admin_shares_a_group_from_its_page_and_a_member_neither_sees_nor_clears_the_box(
    world, fw
):
    people = world.people
    admin, member = client_for(people.adam), client_for(people.alice)
    page = reverse("dashboard:firewall_group", args=[fw.group.pk])
    url = reverse("dashboard:firewall_group_update", args=[fw.group.pk])
    fields = {"name": "app-edge", "description": "", "egress_policy": str(fw.policy.pk),
              "ports": [str(fw.pair.app_port.pk)], "admin_state_up": "on"}  # fmt: skip
    assert 'name="shared"' in admin.get(page).content.decode()
    assert 'name="shared"' not in member.get(page).content.decode(), "only admins may share"
    assert admin.post(url, {**fields, "shared": "on"}).status_code == 302
    fw.group.refresh_from_db()
    assert fw.group.shared
    assert member.post(url, {**fields, "description": "edited"}).status_code == 302
    fw.group.refresh_from_db()
    assert fw.group.shared and fw.group.description == "edited", (
        "a box never shown does not unshare"
    )
    assert audited("firewall_group", fw.group.pk) == ["create", "update", "update"]


def test_an_admin_creates_a_shared_group_and_a_members_shared_box_is_ignored(world, fw):
    people = world.people
    new = reverse("dashboard:firewall_group_new")
    fields = {"project": str(people.project_a.pk), "description": "", "ingress_policy": "",
              "egress_policy": "", "admin_state_up": "on", "shared": "on"}  # fmt: skip
    assert 'name="shared"' in client_for(people.adam).get(new).content.decode()
    assert 'name="shared"' not in client_for(people.alice).get(new).content.decode()
    assert client_for(people.adam).post(new, {**fields, "name": "everyone"}).status_code == 302
    assert client_for(people.alice).post(new, {**fields, "name": "mine"}).status_code == 302
    shared = dict(
        FirewallGroup.objects.filter(name__in=["everyone", "mine"]).values_list("name", "shared")
    )
    assert shared == {"everyone": True, "mine": False}
