"""FWaaS v2 actions: rule validation (what the API accepts, the kernel accepts), policy
ordering (insert before/after, remove, move), audited cleared on change, groups on router
ports only, tenancy, sharing, quotas, and the network nodes told."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sgweb.audit.models import AuditEntry
from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule, PolicyRule
from sgweb.fwaas.representation import group_to_dict
from sgweb.routers import actions as router_actions
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, OverQuota, PermissionDenied
from tests.controlplane.factories import port
from tests.controlplane.fwaas_factories import routed_pair


def state() -> tuple[int, ...]:
    return (
        FirewallRule.objects.count(),
        FirewallPolicy.objects.count(),
        PolicyRule.objects.count(),
        FirewallGroup.objects.count(),
        AuditEntry.objects.count(),
    )


def names(policy: FirewallPolicy) -> list[str]:
    return [rule.name for rule in policy.ordered_rules()]


@pytest.fixture
def rules(alice, project_a) -> dict[str, FirewallRule]:
    made = {}
    for name, port_ in (("a", "22"), ("b", "80"), ("c", "443"), ("d", "5432")):
        made[name] = actions.create_rule(
            alice, project_a, name=name, protocol="tcp", destination_port=port_, action="allow"
        )
    return made


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"protocol": "gre"}, "protocol"),
        ({"action": "drop"}, "action"),
        ({"ip_version": 5}, "ip_version"),
        ({"source_ip_address": "300.0.0.1"}, "source_ip_address"),
        ({"ip_version": 6, "destination_ip_address": "192.0.2.0/24"}, "destination_ip_address"),
        ({"destination_ip_address": "2001:db8::/64"}, "destination_ip_address"),
        ({"protocol": "icmp", "destination_port": "22"}, "destination_port"),
        ({"source_port": "22"}, "source_port"),  # any protocol: no ports
        ({"protocol": "tcp", "destination_port": "90:80"}, "destination_port"),
        ({"protocol": "tcp", "destination_port": "0"}, "destination_port"),
        ({"protocol": "udp", "destination_port": "65536"}, "destination_port"),
        ({"protocol": "udp", "destination_port": "1:2:3"}, "destination_port"),
        ({"protocol": "udp", "destination_port": "http"}, "destination_port"),
        ({"enabled": "perhaps"}, "enabled"),
        ({"name": "x" * 256}, "name"),
    ],
)
def test_a_rule_the_kernel_could_not_take_is_refused_naming_the_field_and_nothing_changes(
    alice, project_a, fields, field
):
    before = state()
    with pytest.raises(Invalid) as refusal:
        actions.create_rule(alice, project_a, **fields)
    assert field in refusal.value.errors
    assert state() == before


def test_a_rule_takes_neutrons_spellings(alice, project_a):
    rule = actions.create_rule(
        alice, project_a, protocol="any", ip_version="6", source_ip_address="2001:db8::/64",
        action="REJECT",
    )  # fmt: skip
    assert (rule.protocol, rule.ip_version, rule.action) == (None, 6, "reject")
    same = actions.create_rule(alice, project_a, protocol="udp", destination_port="53:53")
    assert same.destination_port == "53"


def test_changing_a_rule_is_checked_as_a_whole(alice, rules):
    with pytest.raises(Invalid):
        actions.update_rule(alice, rules["a"], protocol="icmp")  # it still has a port
    updated = actions.update_rule(alice, rules["a"], protocol="icmp", destination_port=None)
    assert (updated.protocol, updated.destination_port) == ("icmp", None)


def test_insert_puts_a_rule_before_after_or_on_top_and_remove_takes_it_out(alice, project_a, rules):
    policy = actions.create_policy(alice, project_a, name="p", firewall_rules=[rules["a"]])
    actions.insert_rule(alice, policy, rules["b"], insert_after=rules["a"])
    actions.insert_rule(alice, policy, rules["c"], insert_before=rules["b"])
    actions.insert_rule(alice, policy, rules["d"])
    assert names(policy) == ["d", "a", "c", "b"]
    # insert_before wins over insert_after, as in Neutron.
    actions.remove_rule(alice, policy, rules["d"])
    before_c, after_b = rules["c"], rules["b"]
    actions.insert_rule(alice, policy, rules["d"], insert_before=before_c, insert_after=after_b)
    assert names(policy) == ["a", "d", "c", "b"]
    actions.move_rule(alice, policy, rules["b"], offset=-1)
    actions.move_rule(alice, policy, rules["a"], offset=-1)  # already first
    assert names(policy) == ["a", "d", "b", "c"]
    assert list(PolicyRule.objects.filter(policy=policy).values_list("position", flat=True)) == [
        1, 2, 3, 4,
    ]  # fmt: skip


def test_ordering_refusals_change_nothing(alice, project_a, rules):
    policy = actions.create_policy(alice, project_a, name="p", firewall_rules=[rules["a"]])
    before = state()
    with pytest.raises(Conflict):
        actions.insert_rule(alice, policy, rules["a"])
    with pytest.raises(Invalid):
        actions.insert_rule(alice, policy, rules["b"], insert_after=rules["c"])
    with pytest.raises(Invalid):
        actions.remove_rule(alice, policy, rules["b"])
    with pytest.raises(Invalid):
        actions.create_policy(alice, project_a, firewall_rules=[rules["a"], rules["a"]])
    assert state() == before
    assert names(policy) == ["a"]


def test_any_change_clears_audited_unless_the_change_sets_it(alice, project_a, rules):
    policy = actions.create_policy(alice, project_a, name="p", audited=True)
    assert policy.audited
    policy = actions.update_policy(alice, policy, description="why")
    assert not policy.audited
    policy = actions.update_policy(alice, policy, audited=True, firewall_rules=[rules["a"]])
    assert policy.audited
    policy = actions.insert_rule(alice, policy, rules["b"])
    assert not policy.audited
    actions.update_policy(alice, policy, audited=True)
    actions.update_rule(alice, rules["a"], destination_port="2222")
    policy.refresh_from_db()
    assert not policy.audited  # one of its rules changed


def test_a_rule_in_a_policy_and_a_policy_in_a_group_cannot_be_deleted(
    adam, alice, project_a, rules
):
    policy = actions.create_policy(alice, project_a, firewall_rules=[rules["a"]])
    actions.create_group(alice, project_a, ingress_policy=policy)
    before = state()
    with pytest.raises(Conflict, match="being used"):
        actions.delete_rule(alice, rules["a"])
    with pytest.raises(Conflict, match="being used"):
        actions.delete_policy(alice, policy)
    assert state() == before


def test_a_group_filters_router_interfaces_only_each_in_one_group(adam, alice, project_a):
    pair = routed_pair(adam, alice, project_a)
    vm = port(adam, project_a, pair.web, host="compute1")
    first = actions.create_group(alice, project_a, name="edge", ports=[pair.web_port])
    before = state()
    with pytest.raises(Invalid, match="not a router interface"):
        actions.create_group(alice, project_a, ports=[vm])
    with pytest.raises(Conflict, match="another firewall group"):
        actions.create_group(alice, project_a, ports=[pair.web_port])
    assert state() == before
    assert group_to_dict(first)["ports"] == [str(pair.web_port.id)]


def test_a_group_is_inactive_without_ports_pending_until_its_node_runs_and_down_when_off(
    adam, alice, project_a
):
    pair = routed_pair(adam, alice, project_a)
    group = actions.create_group(alice, project_a)
    assert group_to_dict(group)["status"] == "INACTIVE"
    group = actions.update_group(alice, group, ports=[pair.web_port, pair.app_port])
    assert group_to_dict(group)["status"] == "PENDING"
    pair.node.status = "in-sync"
    pair.node.save()
    assert group_to_dict(FirewallGroup.objects.get()).get("status") == "ACTIVE"
    pair.node.status = "failed"
    pair.node.save()
    assert group_to_dict(FirewallGroup.objects.get())["status"] == "ERROR"
    group = actions.update_group(alice, group, admin_state_up=False)
    assert group_to_dict(group)["status"] == "DOWN"


def test_a_router_interface_in_a_group_cannot_be_removed_from_under_it(adam, alice, project_a):
    pair = routed_pair(adam, alice, project_a)
    actions.create_group(alice, project_a, name="edge", ports=[pair.web_port])
    with pytest.raises(Conflict, match="firewall group edge"):
        router_actions.remove_interface(alice, pair.router, subnet=pair.web_subnet)
    assert pair.router.interfaces.count() == 2


def test_changes_reach_the_network_nodes_of_the_groups_routers(
    adam, alice, project_a, rules, dispatched, django_capture_on_commit_callbacks
):
    pair = routed_pair(adam, alice, project_a)
    policy = actions.create_policy(alice, project_a, firewall_rules=[rules["a"]])
    with django_capture_on_commit_callbacks(execute=True):
        actions.create_group(alice, project_a, egress_policy=policy, ports=[pair.app_port])
        actions.insert_rule(alice, policy, rules["b"])
        actions.update_rule(alice, rules["a"], action="deny")
        actions.update_rule(alice, rules["c"], action="deny")  # in no policy: reaches nothing
        actions.update_rule(alice, rules["a"], name="renamed")  # names reach no kernel
    assert [hosts for hosts, _ in dispatched["network_nodes"]] == [["network1"]] * 3


def test_outsiders_cannot_see_and_readers_cannot_change_and_sharing_is_for_admins(
    adam, alice, charlie, rita, project_a, project_b, rules
):
    policy = actions.create_policy(alice, project_a, firewall_rules=[rules["a"]])
    before = state()
    with pytest.raises(NotFound):
        actions.update_rule(charlie, rules["a"], name="mine")
    with pytest.raises(NotFound):
        actions.create_policy(charlie, project_b, firewall_rules=[rules["a"]])
    with pytest.raises(NotFound):
        actions.create_group(charlie, project_b, ingress_policy=policy)
    with pytest.raises(PermissionDenied):
        actions.delete_policy(rita, policy)
    with pytest.raises(PermissionDenied):
        actions.create_rule(alice, project_a, shared=True)
    assert state() == before
    # A shared policy holds shared rules only; shared, both are usable by other projects.
    with pytest.raises(Conflict):
        actions.update_policy(adam, policy, shared=True)
    shared_rule = actions.update_rule(adam, rules["a"], shared=True)
    policy = actions.update_policy(adam, policy, shared=True)
    actions.create_group(charlie, project_b, ingress_policy=policy)
    actions.create_policy(charlie, project_b, firewall_rules=[shared_rule])


@override_settings(QUOTA_FIREWALL_RULES=1, QUOTA_FIREWALL_POLICIES=1, QUOTA_FIREWALL_GROUPS=1)
def test_the_firewall_quotas_are_kept(alice, project_a):
    actions.create_rule(alice, project_a)
    actions.create_policy(alice, project_a)
    actions.create_group(alice, project_a)
    before = state()
    with pytest.raises(OverQuota):
        actions.create_rule(alice, project_a)
    with pytest.raises(OverQuota):
        actions.create_policy(alice, project_a)
    with pytest.raises(OverQuota):
        actions.create_group(alice, project_a)
    assert state() == before


def test_every_change_is_audited(alice, project_a, rules):
    policy = actions.create_policy(alice, project_a, name="p")
    actions.insert_rule(alice, policy, rules["a"])
    entries = AuditEntry.objects.filter(object_id=str(policy.id))
    assert sorted(entries.values_list("object_type", "action")) == [
        ("firewall_policy", "create"),
        ("firewall_policy", "update"),
    ]


def test_a_project_with_routers_or_firewall_objects_cannot_be_deleted(adam, alice, project_a):
    from sgweb.tenancy.actions import delete_project

    rule = actions.create_rule(alice, project_a, name="lonely")
    with pytest.raises(Conflict):
        delete_project(adam, project_a)
    actions.delete_rule(alice, rule)
    router = router_actions.create_router(alice, project_a, name="r1")
    with pytest.raises(Conflict):
        delete_project(adam, project_a)
    router_actions.delete_router(alice, router)
