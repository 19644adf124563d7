"""Firewall policies are created with their rules in order, get rules inserted before or after
another and removed, are renamed and deleted from their pages, through the fwaas actions;
readers get no forms and a 403, outsiders a 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallPolicy
from sgweb.tenancy.models import Membership
from tests.dashboard.conftest import World, client_for
from tests.dashboard.firewall_world import Firewalled, audited, firewalled

pytestmark = pytest.mark.django_db


@pytest.fixture
def fw(world: World) -> Firewalled:
    return firewalled(world.people)


def _names(policy: FirewallPolicy) -> list[str]:
    return [rule.name for rule in policy.ordered_rules()]


def _rule(world: World, name: str, port: str = "443"):  # type: ignore[no-untyped-def]
    people = world.people
    return actions.create_rule(
        people.alice, people.project_a, name=name, protocol="tcp", destination_port=port
    )


def test_a_member_creates_a_policy_with_the_rules_picked_in_the_order_numbered(world, fw):
    client = client_for(world.people.alice)
    page = client.get(reverse("dashboard:firewall_policy_new")).content.decode()
    assert "allow-ssh" in page and f'name="position-{fw.deny_db.pk}"' in page
    answer = client.post(
        reverse("dashboard:firewall_policy_new"),
        {
            "project": str(world.people.project_a.pk),
            "name": "prod-ingress",
            "description": "",
            "firewall_rules": [str(fw.allow_ssh.pk), str(fw.deny_db.pk)],
            f"position-{fw.deny_db.pk}": "1",
            f"position-{fw.allow_ssh.pk}": "2",
        },
    )
    policy = FirewallPolicy.objects.get(name="prod-ingress")
    assert answer["Location"] == reverse("dashboard:firewall_policy", args=[policy.pk])
    assert _names(policy) == ["deny-db", "allow-ssh"]
    assert audited("firewall_policy", policy.pk) == ["create"]


def test_a_policy_cannot_be_made_of_another_projects_rule_and_nothing_is_created(world, fw):
    people = world.people
    theirs = actions.create_rule(people.charlie, people.project_b, name="theirs")
    answer = client_for(people.alice).post(
        reverse("dashboard:firewall_policy_new"),
        {"project": str(people.project_a.pk), "name": "p", "firewall_rules": [str(theirs.pk)]},
        headers={"X-Requested-With": "fetch"},
    )
    assert answer.status_code == 400
    assert "Choose rules of this project" in answer.json()["errors"]["firewall_rules"][0]
    assert not FirewallPolicy.objects.filter(name="p").exists()


def test_rules_are_inserted_at_the_top_before_after_and_at_the_bottom(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_policy_insert_rule", args=[fw.policy.pk])
    placements = [
        ("first", "top", ""),
        ("between", "after", fw.allow_ssh.pk),
        ("before-db", "before", fw.deny_db.pk),
        ("last", "bottom", ""),
    ]
    for name, where, reference in placements:
        rule = _rule(world, name)
        answer = client.post(url, {"firewall_rule_id": rule.pk, "where": where,
                                   "reference": reference})  # fmt: skip
        assert answer.status_code == 302, name
    assert _names(fw.policy) == ["first", "allow-ssh", "between", "before-db", "deny-db", "last"]
    page = client.get(reverse("dashboard:firewall_policy", args=[fw.policy.pk])).content.decode()
    assert page.index("before-db") < page.index(">deny-db<")


def test_an_insert_next_to_no_rule_of_the_policy_is_refused_on_the_form(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_policy_insert_rule", args=[fw.policy.pk])
    extra = _rule(world, "extra")
    page = client.post(url, {"firewall_rule_id": extra.pk, "where": "before", "reference": ""})
    assert page.status_code == 400
    assert "Choose a rule of this policy to insert next to." in page.content.decode()
    twice = client.post(url, {"firewall_rule_id": fw.deny_db.pk, "where": "top"})
    assert twice.status_code == 409
    assert "The rule is in this policy already." in twice.content.decode()
    theirs = actions.create_rule(world.people.charlie, world.people.project_b, name="theirs")
    foreign = client.post(url, {"firewall_rule_id": theirs.pk, "where": "top"})
    assert "Choose a rule of this project or a shared one." in foreign.content.decode()
    assert _names(fw.policy) == ["allow-ssh", "deny-db"]
    assert audited("firewall_policy", fw.policy.pk) == ["create"]


def test_removing_a_rule_keeps_the_rule_and_the_policy_forgets_its_audit(world, fw):
    fw.policy.audited = True
    fw.policy.save()
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_policy_remove_rule", args=[fw.policy.pk, fw.allow_ssh.pk])
    assert client.post(url).status_code == 302
    fw.policy.refresh_from_db()
    assert _names(fw.policy) == ["deny-db"] and fw.policy.audited is False
    fw.allow_ssh.refresh_from_db()  # still there
    assert client.post(url).status_code == 404, "no such rule in the policy any more"


def test_a_member_renames_a_policy_and_a_bad_name_changes_nothing(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_policy_update", args=[fw.policy.pk])
    answer = client.post(url, {"name": "prod-out", "description": "egress of prod"})
    assert answer.status_code == 302
    fw.policy.refresh_from_db()
    assert (fw.policy.name, fw.policy.description) == ("prod-out", "egress of prod")
    page = client.post(url, {"name": "x" * 300, "description": ""})
    assert page.status_code == 400 and 'id="edit-policy" open' in page.content.decode()
    fw.policy.refresh_from_db()
    assert fw.policy.name == "prod-out"
    assert audited("firewall_policy", fw.policy.pk) == ["create", "update"]


def test_deleting_a_policy_a_group_uses_is_refused_and_a_free_one_is_deleted(world, fw):
    client = client_for(world.people.alice)
    url = reverse("dashboard:firewall_policy_delete", args=[fw.policy.pk])
    refused = client.post(url, follow=True).content.decode()
    assert "is being used" in refused and "Firewall groups still use it." in refused
    assert FirewallPolicy.objects.filter(pk=fw.policy.pk).exists()
    actions.update_group(world.people.alice, fw.group, egress_policy=None)
    assert client.post(url)["Location"] == reverse("dashboard:firewall_policies")
    assert not FirewallPolicy.objects.filter(pk=fw.policy.pk).exists()
    assert audited("firewall_policy", fw.policy.pk) == ["create", "delete"]


def test_a_reader_sees_the_policy_without_forms_and_may_not_post(world, fw):
    reader = client_for(world.people.rita)
    page = reader.get(reverse("dashboard:firewall_policy", args=[fw.policy.pk])).content.decode()
    assert "deny-db" in page and "You are a reader" in page and "Insert a rule" not in page
    assert "New policy" not in reader.get(reverse("dashboard:firewall_policies")).content.decode()
    assert reader.get(reverse("dashboard:firewall_policy_new")).status_code == 403
    posts = [
        reverse("dashboard:firewall_policy_update", args=[fw.policy.pk]),
        reverse("dashboard:firewall_policy_delete", args=[fw.policy.pk]),
        reverse("dashboard:firewall_policy_insert_rule", args=[fw.policy.pk]),
        reverse("dashboard:firewall_policy_remove_rule", args=[fw.policy.pk, fw.deny_db.pk]),
    ]
    for url in posts:
        assert reader.post(url, {"name": "x", "firewall_rule_id": fw.deny_db.pk}).status_code == 403
    outsider = client_for(world.people.charlie)
    for url in posts:
        assert outsider.post(url, {"name": "x"}).status_code == 404
    fw.policy.refresh_from_db()
    assert fw.policy.name == "prod-egress" and _names(fw.policy) == ["allow-ssh", "deny-db"]


def test_a_member_of_two_projects_is_told_a_rule_of_the_other_cannot_go_in(world, fw):
    people = world.people
    Membership.objects.create(user=people.alice, project=people.project_b)
    alice = User.objects.get(pk=people.alice.pk)  # her projects are cached on the old object
    other = actions.create_rule(alice, people.project_b, name="b-rule")
    answer = client_for(alice).post(
        reverse("dashboard:firewall_policy_new"),
        {"project": str(people.project_a.pk), "name": "mixed",
         "firewall_rules": [str(fw.deny_db.pk), str(other.pk)]},
    )  # fmt: skip
    assert answer.status_code == 400
    assert "Rule b-rule is of another project and not shared" in answer.content.decode()
    assert not FirewallPolicy.objects.filter(name="mixed").exists()


def test_an_admin_shares_a_policy_only_once_its_rules_are_shared_and_a_member_keeps_it(world, fw):
    people = world.people
    admin, member = client_for(people.adam), client_for(people.alice)
    url = reverse("dashboard:firewall_policy_update", args=[fw.policy.pk])
    page = reverse("dashboard:firewall_policy", args=[fw.policy.pk])
    assert 'name="shared"' in admin.get(page).content.decode()
    assert 'name="shared"' not in member.get(page).content.decode(), "only admins may share"
    # Its rules are private: the policy's other projects could not see them (Neutron's rule).
    refused = admin.post(url, {"name": "prod-egress", "description": "", "shared": "on"})
    assert refused.status_code == 409 and "Share its rules first." in refused.content.decode()
    fw.policy.refresh_from_db()
    assert not fw.policy.shared
    for rule in (fw.allow_ssh, fw.deny_db):
        actions.update_rule(people.adam, rule, shared=True)
    assert (
        admin.post(url, {"name": "prod-egress", "description": "", "shared": "on"}).status_code
        == 302
    )
    fw.policy.refresh_from_db()
    assert fw.policy.shared and "shared" in admin.get(page).content.decode()
    assert member.post(url, {"name": "prod-egress", "description": "edited"}).status_code == 302
    fw.policy.refresh_from_db()
    assert fw.policy.shared and fw.policy.description == "edited", (
        "a box never shown does not unshare"
    )
    assert admin.post(url, {"name": "prod-egress", "description": ""}).status_code == 302
    fw.policy.refresh_from_db()
    assert not fw.policy.shared, "an admin's unticked box unshares"


def test_an_admin_creates_a_shared_policy_and_a_members_shared_box_is_ignored(world, fw):
    people = world.people
    actions.update_rule(people.adam, fw.allow_ssh, shared=True)
    fields = {"project": str(people.project_a.pk), "description": "", "shared": "on",
              "firewall_rules": [str(fw.allow_ssh.pk)]}  # fmt: skip
    new = reverse("dashboard:firewall_policy_new")
    assert 'name="shared"' in client_for(people.adam).get(new).content.decode()
    assert client_for(people.adam).post(new, {**fields, "name": "everyone"}).status_code == 302
    assert FirewallPolicy.objects.get(name="everyone").shared
    assert client_for(people.alice).post(new, {**fields, "name": "mine"}).status_code == 302
    assert not FirewallPolicy.objects.get(name="mine").shared
