"""Firewall rules are created, edited and deleted from their pages through the fwaas actions:
what the action refuses is shown on the form and changes nothing; readers get no forms and a
403, outsiders a 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sgweb.fwaas.models import FirewallRule
from tests.dashboard.conftest import World, client_for
from tests.dashboard.firewall_world import Firewalled, audited, firewalled

pytestmark = pytest.mark.django_db

NEW = {
    "name": "deny-pg",
    "description": "no database from the web tier",
    "protocol": "tcp",
    "ip_version": "4",
    "source_ip_address": "192.0.2.0/24",
    "source_port": "",
    "destination_ip_address": "198.51.100.10",
    "destination_port": "5432:5433",
    "action": "reject",
    "enabled": "on",
}


@pytest.fixture
def fw(world: World) -> Firewalled:
    return firewalled(world.people)


def _new(world: World, **changes: str) -> dict[str, str]:
    return {**NEW, "project": str(world.people.project_a.pk), **changes}


def test_a_member_creates_a_rule_from_the_new_rule_page_and_it_is_audited(world):
    client = client_for(world.people.alice)
    page = client.get(reverse("dashboard:firewall_rule_new"))
    assert page.status_code == 200
    assert 'name="destination_port"' in page.content.decode()
    assert 'name="shared"' not in page.content.decode(), "only admins may share"
    answer = client.post(reverse("dashboard:firewall_rule_new"), _new(world))
    rule = FirewallRule.objects.get(name="deny-pg")
    assert answer.status_code == 302
    assert answer["Location"] == reverse("dashboard:firewall_rule", args=[rule.pk])
    assert (rule.protocol, rule.action, rule.destination_port, rule.enabled) == (
        "tcp", "reject", "5432:5433", True,
    )  # fmt: skip
    assert rule.source_ip_address == "192.0.2.0/24" and not rule.shared
    assert audited("firewall_rule", rule.pk) == ["create"]
    text = client.get(answer["Location"]).content.decode()
    assert "deny-pg" in text and "No policy holds this rule" in text


def test_any_protocol_and_a_disabled_rule_are_what_the_form_says(world):
    client = client_for(world.people.alice)
    fields = _new(world, protocol="any", destination_port="", source_ip_address="")
    del fields["enabled"]
    assert client.post(reverse("dashboard:firewall_rule_new"), fields).status_code == 302
    rule = FirewallRule.objects.get(name="deny-pg")
    assert rule.protocol is None and rule.enabled is False and rule.source_ip_address is None


def test_bad_input_is_refused_inline_in_the_actions_words_and_creates_nothing(world):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_rule_new")
    page = client.post(url, _new(world, protocol="icmp", destination_ip_address="2001:db8::1"))
    assert page.status_code == 400
    text = page.content.decode()
    assert "not allowed when protocol is set to ICMP" in text
    assert "do not agree with IP Version" in text
    assert 'value="deny-pg"' in text, "the form comes back with what was typed"
    inline = client.post(
        url, _new(world, destination_port="9:1"), headers={"X-Requested-With": "fetch"}
    )
    assert inline.status_code == 400
    assert (
        "the first port must not exceed the last" in inline.json()["errors"]["destination_port"][0]
    )
    assert not FirewallRule.objects.filter(name="deny-pg").exists()


def test_a_member_edits_a_rule_and_its_policy_is_no_longer_audited(world, fw):
    fw.policy.audited = True
    fw.policy.save()
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_rule_update", args=[fw.deny_db.pk])
    fields = {**NEW, "name": "deny-db", "destination_port": "5432", "action": "reject"}
    del fields["enabled"]
    answer = client.post(url, fields)
    assert answer.status_code == 302
    fw.deny_db.refresh_from_db()
    assert (fw.deny_db.action, fw.deny_db.enabled, fw.deny_db.source_ip_address) == (
        "reject", False, "192.0.2.0/24",
    )  # fmt: skip
    fw.policy.refresh_from_db()
    assert fw.policy.audited is False
    assert audited("firewall_rule", fw.deny_db.pk) == ["create", "update"]


def test_a_refused_edit_shows_the_form_open_with_the_error_and_changes_nothing(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_rule_update", args=[fw.deny_db.pk])
    page = client.post(url, {**NEW, "name": "deny-db", "source_port": "80", "protocol": "any"})
    assert page.status_code == 400
    text = page.content.decode()
    assert "requires a protocol (tcp or udp)" in text and 'id="edit-rule" open' in text
    fw.deny_db.refresh_from_db()
    assert (fw.deny_db.action, fw.deny_db.protocol) == ("deny", "tcp")
    assert audited("firewall_rule", fw.deny_db.pk) == ["create"]


def test_deleting_a_rule_a_policy_holds_is_refused_by_naming_the_policy(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_rule_delete", args=[fw.deny_db.pk])
    answer = client.post(url, follow=True)
    assert "is used by policy prod-egress: remove it from there first" in answer.content.decode()
    assert FirewallRule.objects.filter(pk=fw.deny_db.pk).exists()
    free = client_for(world.people.alice).post(
        reverse("dashboard:firewall_policy_remove_rule", args=[fw.policy.pk, fw.deny_db.pk])
    )
    assert free.status_code == 302
    gone = client.post(url)
    assert gone["Location"] == reverse("dashboard:firewall_rules")
    assert not FirewallRule.objects.filter(pk=fw.deny_db.pk).exists()
    assert audited("firewall_rule", fw.deny_db.pk) == ["create", "delete"]


def test_an_admin_may_share_a_rule_and_a_member_keeps_it_shared_when_editing(world):
    admin = client_for(world.people.adam)
    assert 'name="shared"' in admin.get(reverse("dashboard:firewall_rule_new")).content.decode()
    admin.post(reverse("dashboard:firewall_rule_new"), _new(world, shared="on"))
    rule = FirewallRule.objects.get(name="deny-pg")
    assert rule.shared
    member = client_for(world.people.alice)
    edit = reverse("dashboard:firewall_rule_update", args=[rule.pk])
    assert member.post(edit, {**NEW, "description": "edited"}).status_code == 302
    rule.refresh_from_db()
    assert rule.shared and rule.description == "edited", "a box never shown does not unshare"


def test_a_reader_sees_rules_without_forms_and_may_not_post(world, fw):
    reader = client_for(world.people.rita)
    listing = reader.get(reverse("dashboard:firewall_rules")).content.decode()
    assert "deny-db" in listing and "New rule" not in listing
    page = reader.get(reverse("dashboard:firewall_rule", args=[fw.deny_db.pk])).content.decode()
    assert "prod-egress" in page and "You are a reader" in page
    for name in ("firewall_rule_update", "firewall_rule_delete"):
        assert reverse(f"dashboard:{name}", args=[fw.deny_db.pk]) not in page, name
    assert reader.get(reverse("dashboard:firewall_rule_new")).status_code == 403
    for name in ("firewall_rule_update", "firewall_rule_delete"):
        assert (
            reader.post(reverse(f"dashboard:{name}", args=[fw.deny_db.pk]), NEW).status_code == 403
        )
    fw.deny_db.refresh_from_db()
    assert fw.deny_db.action == "deny"


def test_an_outsider_finds_no_rule_of_another_project(world, fw):
    outsider = client_for(world.people.charlie)
    assert "deny-db" not in outsider.get(reverse("dashboard:firewall_rules")).content.decode()
    for name in ("firewall_rule", "firewall_rule_update", "firewall_rule_delete"):
        url = reverse(f"dashboard:{name}", args=[fw.deny_db.pk])
        answer = outsider.get(url) if name == "firewall_rule" else outsider.post(url, NEW)
        assert answer.status_code == 404, name
    assert FirewallRule.objects.filter(pk=fw.deny_db.pk, action="deny").exists()
