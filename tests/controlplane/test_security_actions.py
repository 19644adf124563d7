import pytest

from sgweb.audit.models import AuditEntry
from sgweb.security import actions
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, OverQuota, PermissionDenied
from tests.controlplane.factories import group, network_with_subnet, port


def _in(**fields):
    return {"direction": "ingress", **fields}


def counts() -> tuple[int, int, int]:
    return (
        SecurityGroup.objects.count(),
        SecurityGroupRule.objects.count(),
        AuditEntry.objects.count(),
    )


def test_first_group_of_a_project_brings_the_default_group_with_neutrons_rules(alice, project_a):
    actions.create_security_group(alice, project_a, name="web")
    default = SecurityGroup.objects.get(project=project_a, name="default")
    rules = {
        (r.direction, r.ethertype, r.remote_group_id == default.id) for r in default.rules.all()
    }
    assert rules == {
        ("egress", "IPv4", False),
        ("egress", "IPv6", False),
        ("ingress", "IPv4", True),
        ("ingress", "IPv6", True),
    }


def test_a_new_group_gets_allow_all_egress_rules_like_neutron(alice, project_a):
    web = group(alice, project_a)
    assert sorted((r.direction, r.ethertype) for r in web.rules.all()) == [
        ("egress", "IPv4"),
        ("egress", "IPv6"),
    ]


def test_creating_a_group_is_audited_with_its_state_after(alice, project_a):
    web = group(alice, project_a)
    entry = AuditEntry.objects.get(object_type="security_group", object_id=str(web.id))
    assert entry.actor == alice
    assert entry.action == "create"
    assert entry.before is None
    assert entry.after["name"] == "web"


def test_outsider_cannot_create_a_group_in_someone_elses_project(charlie, project_a):
    before = counts()
    with pytest.raises(NotFound):
        actions.create_security_group(charlie, project_a, name="evil")
    assert counts() == before


def test_reader_cannot_create_a_group(rita, project_a):
    before = counts()
    with pytest.raises(PermissionDenied):
        actions.create_security_group(rita, project_a, name="audit")
    assert counts() == before


def test_group_quota_refuses_the_eleventh_group_and_changes_nothing(alice, project_a):
    for index in range(9):  # plus the default group: 10
        group(alice, project_a, f"g{index}")
    before = counts()
    with pytest.raises(OverQuota):
        group(alice, project_a, "one-too-many")
    assert counts() == before


def test_an_admin_raised_quota_allows_more_groups(alice, adam, project_a):
    from sgweb.tenancy.actions import set_quota

    set_quota(adam, project_a, security_groups=12)
    for index in range(11):
        group(alice, project_a, f"g{index}")
    assert SecurityGroup.objects.filter(project=project_a).count() == 12


def test_name_with_control_characters_is_refused_with_a_clear_message(alice, project_a):
    with pytest.raises(Invalid) as refusal:
        actions.create_security_group(alice, project_a, name="bad\x07name")
    assert "control characters" in refusal.value.message
    assert "name" in refusal.value.errors


def test_overlong_description_is_refused(alice, project_a):
    with pytest.raises(Invalid) as refusal:
        actions.create_security_group(alice, project_a, name="ok", description="x" * 256)
    assert "at most 255" in refusal.value.message


def test_adding_a_rule_bumps_the_groups_revision_number(alice, project_a):
    web = group(alice, project_a)
    revision = web.revision_number
    actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22
    )
    web.refresh_from_db()
    assert web.revision_number == revision + 1


def test_duplicate_rule_is_refused_with_a_conflict(alice, project_a):
    web = group(alice, project_a)
    actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22
    )
    before = counts()
    with pytest.raises(Conflict) as refusal:
        actions.create_security_group_rule(
            alice, web, direction="ingress", protocol="6", port_range_min=22, port_range_max=22
        )
    assert refusal.value.neutron_type == "SecurityGroupRuleExists"
    assert counts() == before


def test_any_prefix_and_no_prefix_are_the_same_rule(alice, project_a):
    web = group(alice, project_a)
    with pytest.raises(Conflict):
        actions.create_security_group_rule(
            alice, web, direction="egress", ethertype="IPv4", remote_ip_prefix="0.0.0.0/0"
        )


def test_the_duplicate_check_reads_only_rules_with_the_same_ports_and_prefix(
    alice, adam, project_a
):
    """A bulk create of n rules must not read the whole group n times (quadratic: 600 rules
    held SQLite's write lock for a minute): the database narrows the candidates."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sgweb.tenancy.actions import set_quota

    set_quota(adam, project_a, security_group_rules=-1)
    web = group(alice, project_a)
    for number in range(1000, 1040):
        actions.create_security_group_rule(
            alice, web, **_in(protocol="tcp", port_range_min=number, port_range_max=number)
        )
    with CaptureQueriesContext(connection) as queries:
        actions.create_security_group_rule(
            alice, web, **_in(protocol="tcp", port_range_min=2000, port_range_max=2000)
        )
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "security_securitygrouprule"' in q["sql"]
        and "COUNT(" not in q["sql"]
    ]  # fmt: skip
    assert reads, "the duplicate check reads rules"
    assert all("port_range_min" in sql and "normalized_cidr" in sql for sql in reads)


def test_rule_quota_holds_across_groups_of_one_project(alice, adam, project_a):
    """Creating a rule locks the project row: creates in two groups of one project queue
    for the quota instead of both seeing room for one more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    web = group(alice, project_a)
    with CaptureQueriesContext(connection) as queries:
        actions.create_security_group_rule(alice, web, **_in(protocol="tcp"))
    locks = [q["sql"] for q in queries.captured_queries if 'FROM "tenancy_project"' in q["sql"]]
    if connection.features.has_select_for_update:
        assert any("FOR UPDATE" in sql for sql in locks)
    else:  # SQLite: IMMEDIATE transactions take the database's write lock up front
        assert connection.transaction_mode == "IMMEDIATE"


def test_remote_prefix_is_normalised_to_its_network(alice, project_a):
    web = group(alice, project_a)
    rule = actions.create_security_group_rule(
        alice, web, direction="ingress", remote_ip_prefix="192.0.2.77/24"
    )
    assert rule.remote_ip_prefix == "192.0.2.77/24"
    assert rule.normalized_cidr == "192.0.2.0/24"


@pytest.mark.parametrize(
    ("fields", "field", "words", "neutron_type"),
    [
        ({"direction": "sideways"}, "direction", "not in", "InvalidInput"),
        (
            _in(ethertype="IPv5"),
            "ethertype",
            "ethertype 'IPv5' not supported",
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            _in(remote_ip_prefix="2001:db8::/32"),
            "remote_ip_prefix",
            "Conflicting",
            "SecurityGroupRuleParameterConflict",
        ),
        (_in(remote_ip_prefix="192.0.2.300/24"), "remote_ip_prefix", "Invalid CIDR", "InvalidCIDR"),
        (
            _in(protocol="tcp", port_range_min=0, port_range_max=10),
            "port_range_min",
            "Invalid value for port 0",
            "SecurityGroupInvalidPortValue",
        ),
        (
            _in(protocol="tcp", port_range_min=1, port_range_max=70000),
            "port_range_max",
            "Invalid value for port 70000",
            "SecurityGroupInvalidPortValue",
        ),
        (
            _in(protocol="tcp", port_range_min=90, port_range_max=80),
            "port_range_max",
            "port_range_min must be <= port_range_max",
            "SecurityGroupInvalidPortRange",
        ),
        (
            _in(protocol="tcp", port_range_min=22),
            "port_range_max",
            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            "SecurityGroupInvalidPortRange",
        ),
        (
            _in(protocol="udp", port_range_max=53),
            "port_range_min",
            "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            "SecurityGroupInvalidPortRange",
        ),
        (
            _in(protocol="icmp", port_range_min=256),
            "port_range_min",
            "ICMP type (port_range_min) 256. It must be 0 to 255.",
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            _in(protocol="icmp", port_range_min=8, port_range_max=300),
            "port_range_max",
            "0 to 255",
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            _in(protocol="icmp", port_range_max=0),
            "port_range_min",
            "missing",
            "SecurityGroupMissingIcmpType",
        ),
        (_in(protocol="banana"), "protocol", "not supported", "SecurityGroupRuleInvalidProtocol"),
        (
            _in(protocol="256"),
            "protocol",
            "between 0 and 255",
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            _in(port_range_min=22, port_range_max=22),
            "protocol",
            "Must also specify protocol",
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            _in(protocol="gre", port_range_min=22),
            "port_range_min",
            "Ports cannot be specified for protocol gre",
            "SecurityGroupInvalidProtocolForPort",
        ),
        (
            _in(ethertype="IPv4", protocol="ipv6-icmp"),
            "protocol",
            "Invalid ethertype IPv4 for protocol ipv6-icmp.",
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            _in(ethertype="IPv4", protocol="41"),
            "protocol",
            "Invalid ethertype IPv4 for protocol 41.",
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            _in(ethertype="IPv4", protocol="ipv6-encap"),
            "protocol",
            "Invalid ethertype IPv4 for protocol ipv6-encap.",
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (
            _in(ethertype="IPv6", protocol="igmp"),
            "protocol",
            "Invalid ethertype IPv6 for protocol igmp.",
            "SecurityGroupEthertypeConflictWithProtocol",
        ),
        (_in(description="a\nb"), "description", "control characters", "InvalidInput"),
    ],
)
def test_bad_rule_is_refused_naming_the_field_and_nothing_changes(
    alice, project_a, fields, field, words, neutron_type
):
    web = group(alice, project_a)
    before = counts()
    with pytest.raises(Invalid) as refusal:
        actions.create_security_group_rule(alice, web, **fields)
    assert field in refusal.value.errors
    assert words in refusal.value.message
    assert refusal.value.neutron_type == neutron_type
    assert counts() == before


def test_icmp_in_an_ipv6_rule_is_stored_as_ipv6_icmp_as_neutron_does(alice, project_a):
    web = group(alice, project_a)
    named = actions.create_security_group_rule(
        alice, web, direction="ingress", ethertype="IPv6", protocol="icmp"
    )
    numbered = actions.create_security_group_rule(
        alice, web, direction="egress", ethertype="IPv6", protocol="1"
    )
    assert (named.protocol, numbered.protocol) == ("ipv6-icmp", "58")


def test_remote_prefix_and_remote_group_together_are_refused(alice, project_a):
    web = group(alice, project_a)
    with pytest.raises(Invalid) as refusal:
        actions.create_security_group_rule(
            alice,
            web,
            direction="ingress",
            remote_ip_prefix="192.0.2.0/24",
            remote_group_id=str(web.id),
        )
    assert "Only remote_ip_prefix or remote_group_id" in refusal.value.message


def test_remote_group_of_another_project_is_not_found_for_a_member(
    alice, charlie, project_a, project_b
):
    web = group(alice, project_a)
    theirs = group(charlie, project_b, "theirs")
    before = counts()
    with pytest.raises(NotFound) as refusal:
        actions.create_security_group_rule(
            alice, web, direction="ingress", remote_group_id=str(theirs.id)
        )
    assert refusal.value.neutron_type == "SecurityGroupNotFound"
    assert counts() == before


def test_rule_quota_refuses_the_rule_past_the_limit(alice, adam, project_a):
    from sgweb.tenancy.actions import set_quota

    web = group(alice, project_a)  # 4 default rules + 2 egress rules
    set_quota(adam, project_a, security_group_rules=7)
    actions.create_security_group_rule(alice, web, direction="ingress", protocol="icmp")
    before = counts()
    with pytest.raises(OverQuota) as refusal:
        actions.create_security_group_rule(alice, web, direction="ingress", protocol="udp")
    assert refusal.value.neutron_type == "OverQuota"
    assert counts() == before


def test_group_used_by_a_port_cannot_be_deleted(alice, project_a):
    web = group(alice, project_a)
    network, _ = network_with_subnet(alice, project_a)
    port(alice, project_a, network, security_groups=[str(web.id)])
    before = counts()
    with pytest.raises(Conflict) as refusal:
        actions.delete_security_group(alice, web)
    assert refusal.value.neutron_type == "SecurityGroupInUse"
    assert counts() == before


def test_deleting_a_group_records_its_state_before(alice, project_a):
    web = group(alice, project_a)
    actions.delete_security_group(alice, web)
    entry = AuditEntry.objects.get(object_type="security_group", action="delete")
    assert entry.before["name"] == "web"
    assert len(entry.before["security_group_rules"]) == 2
    assert entry.after is None


def test_member_cannot_delete_the_default_group(alice, project_a):
    default = actions.ensure_default_group(project_a)
    with pytest.raises(Conflict) as refusal:
        actions.delete_security_group(alice, default)
    assert refusal.value.neutron_type == "SecurityGroupCannotRemoveDefault"


def test_default_group_cannot_be_renamed(alice, project_a):
    default = actions.ensure_default_group(project_a)
    with pytest.raises(Conflict):
        actions.update_security_group(alice, default, name="other")


def test_renaming_a_group_bumps_its_revision_and_audits_before_and_after(alice, project_a):
    web = group(alice, project_a)
    updated = actions.update_security_group(alice, web, name="frontend")
    assert updated.revision_number == web.revision_number + 1
    entry = AuditEntry.objects.get(object_type="security_group", action="update")
    assert (entry.before["name"], entry.after["name"]) == ("web", "frontend")


def test_rule_change_notifies_hosts_of_ports_using_the_group_and_referencing_it(
    adam, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    web = group(alice, project_a)
    db = group(alice, project_a, "db")
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, security_groups=[str(web.id)], host="compute1")
    port(adam, project_a, network, security_groups=[str(db.id)], host="compute2")
    actions.create_security_group_rule(alice, db, direction="ingress", remote_group_id=str(web.id))
    with django_capture_on_commit_callbacks(execute=True):
        actions.create_security_group_rule(alice, web, direction="ingress", protocol="tcp")
    assert dispatched["hosts"][-1][0] == ["compute1"]
    with django_capture_on_commit_callbacks(execute=True):
        port(adam, project_a, network, security_groups=[str(web.id)], host="compute3")
    # web's membership changed: compute3 (the port itself) and compute2 (db names web).
    assert dispatched["hosts"][-1][0] == ["compute2", "compute3"]


def test_deleting_a_group_audits_the_rules_of_other_groups_that_named_it(alice, project_a):
    web = group(alice, project_a)
    db = group(alice, project_a, "db")
    rule = actions.create_security_group_rule(
        alice, db, direction="ingress", remote_group_id=str(web.id)
    )
    revision = SecurityGroup.objects.get(pk=db.pk).revision_number
    actions.delete_security_group(alice, web)
    assert not SecurityGroupRule.objects.filter(pk=rule.pk).exists()
    assert AuditEntry.objects.filter(object_id=str(rule.id), action="delete").exists()
    assert SecurityGroup.objects.get(pk=db.pk).revision_number == revision + 1


def test_every_code_of_the_compilers_rule_contract_has_neutron_words():
    from sgweb.firewall.errors import RULE_CODES
    from sgweb.security.validators import NEUTRON_WORDS

    # The API sends its own rule id and whole numbers, so these two cannot reach it.
    assert set(RULE_CODES) - {"bad-id", "not-an-integer"} == set(NEUTRON_WORDS)
