"""Changes made from the pages go through the actions; bad input is refused with the shared
validators' words and changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from sgweb.audit.models import AuditEntry
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.security.validators import check_rule_values
from sgweb.tenancy.errors import Invalid
from sgweb.tenancy.validators import Errors
from tests.dashboard.conftest import World

pytestmark = pytest.mark.django_db
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def validator_message(field: str, **values: object) -> str:
    """What the shared validators say about these rule values, for comparison."""
    errors = Errors()
    fields = dict(
        direction="ingress",
        ethertype="IPv4",
        protocol=None,
        port_range_min=None,
        port_range_max=None,
        remote_ip_prefix=None,
        has_remote_group=False,
    )
    fields.update(values)
    check_rule_values(errors, **fields)  # type: ignore[arg-type]
    return errors.by_field[field][0]


def rule_post(**fields: str) -> dict[str, str]:
    data = {"direction": "ingress", "ethertype": "IPv4", "remote_kind": "cidr", "preset": ""}
    data.update(fields)
    return data


def test_a_member_adds_a_rule_with_a_preset(world: World, as_alice: Client) -> None:
    before = world.web.rules.count()
    response = as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(preset="https", protocol="tcp", port_range_min="443", port_range_max="443"),
    )
    assert response.status_code == 302
    assert world.web.rules.count() == before + 1
    rule = world.web.rules.get(port_range_min=443)
    assert rule.protocol == "tcp"
    assert AuditEntry.objects.filter(object_type="security_group_rule", object_id=str(rule.pk))


def test_the_dns_preset_adds_udp_and_tcp_53(world: World, as_alice: Client) -> None:
    as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(preset="dns", protocol="udp", port_range_min="53", port_range_max="53"),
    )
    protocols = set(world.web.rules.filter(port_range_min=53).values_list("protocol", flat=True))
    assert protocols == {"udp", "tcp"}


def test_the_ping_preset_on_ipv6_means_icmpv6_echo_request(world: World, as_alice: Client) -> None:
    as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(preset="icmp", ethertype="IPv6", protocol="icmp", port_range_min="8"),
    )
    rule = world.web.rules.get(ethertype="IPv6", direction="ingress")
    assert (rule.protocol, rule.port_range_min) == ("ipv6-icmp", 128)


def test_a_dns_preset_that_half_exists_adds_nothing(world: World, as_alice: Client) -> None:
    url = f"/security-groups/{world.web.pk}/rules"
    as_alice.post(url, rule_post(protocol="tcp", port_range_min="53", port_range_max="53"))
    count = world.web.rules.count()
    response = as_alice.post(
        url, rule_post(preset="dns", protocol="udp", port_range_min="53", port_range_max="53")
    )
    assert response.status_code == 409
    assert world.web.rules.count() == count
    assert "already has this rule" in response.content.decode()


def test_a_bad_cidr_is_refused_next_to_the_field_with_the_validators_words(
    world: World, as_alice: Client
) -> None:
    count = SecurityGroupRule.objects.count()
    data = rule_post(protocol="tcp", port_range_min="22", remote_ip_prefix="10.0.0.300/8")
    page = as_alice.post(f"/security-groups/{world.web.pk}/rules", data)
    assert page.status_code == 400
    expected = validator_message("remote_ip_prefix", remote_ip_prefix="10.0.0.300/8")
    assert expected.replace("'", "&#x27;") in page.content.decode()
    assert SecurityGroupRule.objects.count() == count

    answer = as_alice.post(f"/security-groups/{world.web.pk}/rules", data, **FETCH)
    assert answer.status_code == 400
    assert answer.json()["errors"]["remote_ip_prefix"] == [expected]
    assert SecurityGroupRule.objects.count() == count


@pytest.mark.parametrize(
    ("fields", "field", "validator_values"),
    [
        (
            {"ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/32"},
            "remote_ip_prefix",
            {"ethertype": "IPv4", "remote_ip_prefix": "2001:db8::/32"},
        ),
        (
            {"protocol": "tcp", "port_range_min": "0"},
            "port_range_min",
            # The form reads a lone minimum as one port: 0 to 0.
            {"protocol": "tcp", "port_range_min": 0, "port_range_max": 0},
        ),
        (
            {"protocol": "tcp", "port_range_min": "90", "port_range_max": "80"},
            "port_range_max",
            {"protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
        ),
        (
            {"protocol": "icmp", "port_range_min": "256"},
            "port_range_min",
            {"protocol": "icmp", "port_range_min": 256},
        ),
        ({"protocol": "bogus"}, "protocol", {"protocol": "bogus"}),
    ],
)
def test_bad_rules_are_refused_with_the_shared_messages(
    world: World,
    as_alice: Client,
    fields: dict[str, str],
    field: str,
    validator_values: dict[str, object],
) -> None:
    count = SecurityGroupRule.objects.count()
    answer = as_alice.post(f"/security-groups/{world.web.pk}/rules", rule_post(**fields), **FETCH)
    assert answer.status_code == 400
    assert validator_message(field, **validator_values) in answer.json()["errors"][field]
    assert SecurityGroupRule.objects.count() == count


def test_a_description_with_control_characters_is_refused(world: World, as_alice: Client) -> None:
    answer = as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(protocol="tcp", port_range_min="80", description="bad\x07bell"),
        **FETCH,
    )
    assert answer.status_code == 400
    assert "control characters" in answer.json()["errors"]["description"][0]


def test_a_remote_group_rule_links_to_the_group(world: World, as_alice: Client) -> None:
    as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(
            remote_kind="group",
            remote_group_id=str(world.web.pk),
            protocol="tcp",
            port_range_min="8080",
            remote_ip_prefix="ignored because the kind is group",
        ),
    )
    rule = world.web.rules.get(port_range_min=8080)
    assert rule.remote_group_id == world.web.pk and rule.remote_ip_prefix is None
    page = as_alice.get(f"/security-groups/{world.web.pk}").content.decode()
    assert f'href="/security-groups/{world.web.pk}"' in page


def test_an_unseeable_remote_group_is_refused_as_unknown(world: World, as_alice: Client) -> None:
    answer = as_alice.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(remote_kind="group", remote_group_id=str(world.group_b.pk), protocol="tcp"),
        **FETCH,
    )
    assert answer.status_code == 404
    assert "does not exist" in answer.json()["errors"]["remote_group_id"][0]


def test_a_member_deletes_a_rule(world: World, as_alice: Client) -> None:
    rule = world.web.rules.get(port_range_min=22)
    response = as_alice.post(f"/security-groups/{world.web.pk}/rules/{rule.pk}/delete")
    assert response.status_code == 302
    assert not SecurityGroupRule.objects.filter(pk=rule.pk).exists()


def test_a_member_creates_renames_and_deletes_a_group(world: World, as_alice: Client) -> None:
    project = world.people.project_a
    response = as_alice.post(
        "/security-groups/new", {"project": str(project.pk), "name": "cache", "description": ""}
    )
    assert response.status_code == 302
    group = SecurityGroup.objects.get(project=project, name="cache")
    as_alice.post(f"/security-groups/{group.pk}/edit", {"name": "redis", "description": "6379"})
    group.refresh_from_db()
    assert (group.name, group.description) == ("redis", "6379")
    as_alice.post(f"/security-groups/{group.pk}/delete")
    assert not SecurityGroup.objects.filter(pk=group.pk).exists()


def test_a_member_creates_a_stateless_group_and_switches_it_while_unused(
    world: World, as_alice: Client
) -> None:
    project = world.people.project_a
    as_alice.post(
        "/security-groups/new",
        {"project": str(project.pk), "name": "raw", "description": "", "stateful": "false"},
    )
    group = SecurityGroup.objects.get(project=project, name="raw")
    assert group.stateful is False
    page = as_alice.get(f"/security-groups/{group.pk}").content.decode()
    assert 'name="stateful"' in page and "Stateless: replies need rules" in page
    as_alice.post(
        f"/security-groups/{group.pk}/edit",
        {"name": "raw", "description": "", "stateful": "true"},
    )
    group.refresh_from_db()
    assert group.stateful is True


def test_a_group_in_use_keeps_its_statefulness_and_the_page_says_why(
    world: World, as_alice: Client
) -> None:
    page = as_alice.get(f"/security-groups/{world.web.pk}").content.decode()
    assert "Ports use this group: remove it from them to switch" in page
    answer = as_alice.post(
        f"/security-groups/{world.web.pk}/edit",
        {"name": "web", "description": "Web servers", "stateful": "false"},
        **FETCH,
    )
    assert answer.status_code == 409
    assert "remove it from them" in answer.json()["errors"]["stateful"][0]
    world.web.refresh_from_db()
    assert world.web.stateful is True


def test_a_group_in_use_is_not_deleted_and_the_page_says_why(
    world: World, as_alice: Client
) -> None:
    response = as_alice.post(f"/security-groups/{world.web.pk}/delete", follow=True)
    assert SecurityGroup.objects.filter(pk=world.web.pk).exists()
    assert "1 port(s) still use this group" in response.content.decode()


def test_a_too_long_group_name_is_refused(world: World, as_alice: Client) -> None:
    answer = as_alice.post(
        "/security-groups/new",
        {"project": str(world.people.project_a.pk), "name": "x" * 300},
        **FETCH,
    )
    assert answer.status_code == 400
    assert "at most 255 characters" in answer.json()["errors"]["name"][0]


def test_group_quota_is_enforced_with_a_clear_message(world: World, as_alice: Client) -> None:
    quota = world.people.project_a.quota
    quota.security_groups = SecurityGroup.objects.filter(project=world.people.project_a).count()
    quota.save()
    answer = as_alice.post(
        "/security-groups/new",
        {"project": str(world.people.project_a.pk), "name": "more"},
        **FETCH,
    )
    assert answer.status_code == 409
    assert "may have" in answer.json()["errors"]["__all__"][0]


def test_ports_gain_and_lose_groups_and_address_pairs(world: World, as_alice: Client) -> None:
    port = world.port_a
    default = SecurityGroup.objects.get(project=world.people.project_a, name="default")
    as_alice.post(f"/ports/{port.pk}/groups", {"security_group": str(default.pk)})
    assert set(port.security_groups.values_list("name", flat=True)) == {"web", "default"}
    as_alice.post(f"/ports/{port.pk}/groups/{default.pk}/remove")
    assert list(port.security_groups.values_list("name", flat=True)) == ["web"]

    as_alice.post(f"/ports/{port.pk}/address-pairs", {"ip_address": "198.51.100.10"})
    pair = port.allowed_address_pairs.get()
    assert pair.mac_address == port.mac_address
    as_alice.post(f"/ports/{port.pk}/address-pairs/{pair.pk}/remove")
    assert not port.allowed_address_pairs.exists()


def test_a_bad_address_pair_is_refused_next_to_the_field(world: World, as_alice: Client) -> None:
    answer = as_alice.post(
        f"/ports/{world.port_a.pk}/address-pairs", {"ip_address": "not-an-ip"}, **FETCH
    )
    assert answer.status_code == 400
    assert answer.json()["errors"]["ip_address"]
    assert not world.port_a.allowed_address_pairs.exists()


def test_port_security_cannot_be_disabled_while_groups_are_attached(
    world: World, as_alice: Client
) -> None:
    port = world.port_a
    page = as_alice.post(f"/ports/{port.pk}/port-security", {"enabled": "false"}, follow=True)
    port.refresh_from_db()
    assert port.port_security_enabled
    assert "Remove the security groups first." in page.content.decode()

    as_alice.post(f"/ports/{port.pk}/groups/{world.web.pk}/remove")
    as_alice.post(f"/ports/{port.pk}/port-security", {"enabled": "false"})
    port.refresh_from_db()
    assert not port.port_security_enabled
    as_alice.post(f"/ports/{port.pk}/port-security", {"enabled": "true"})
    port.refresh_from_db()
    assert port.port_security_enabled


def test_a_member_creates_a_subnet_and_a_bad_cidr_is_refused(
    world: World, as_alice: Client
) -> None:
    network = world.network_a
    as_alice.post(
        f"/networks/{network.pk}/subnets",
        {"cidr": "2001:db8:1::/64", "enable_dhcp": "on", "dhcp_servers": "2001:db8:1::2"},
    )
    subnet = network.subnets.get(cidr="2001:db8:1::/64")
    assert subnet.dhcp_servers == ["2001:db8:1::2"]
    answer = as_alice.post(f"/networks/{network.pk}/subnets", {"cidr": "300.1.2.0/24"}, **FETCH)
    assert answer.status_code == 400
    assert answer.json()["errors"]["cidr"]


def test_invalid_is_the_one_error_family_forms_use() -> None:
    # The forms rely on Invalid carrying per-field errors; keep that contract visible here.
    error = Invalid.from_errors({"name": ["bad"]})
    assert error.errors == {"name": ["bad"]} and error.status_code == 400


def test_a_member_creates_a_network_in_their_project(world: World, as_alice: Client) -> None:
    from sgweb.networks.models import Network

    response = as_alice.post(
        "/networks/new", {"project": str(world.people.project_a.pk), "name": "db-net"}
    )
    assert response.status_code == 302
    assert Network.objects.filter(project=world.people.project_a, name="db-net").exists()


def test_a_member_cannot_create_a_network_in_another_project(
    world: World, as_alice: Client
) -> None:
    from sgweb.networks.models import Network

    answer = as_alice.post(
        "/networks/new",
        {"project": str(world.people.project_b.pk), "name": "sneaky"},
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert answer.status_code == 400
    assert "project" in answer.json()["errors"]
    assert not Network.objects.filter(name="sneaky").exists()


def test_a_member_cannot_create_a_group_in_another_project(world: World, as_alice: Client) -> None:
    answer = as_alice.post(
        "/security-groups/new",
        {"project": str(world.people.project_b.pk), "name": "sneaky", "description": ""},
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert answer.status_code == 400
    assert "project" in answer.json()["errors"]
    assert not SecurityGroup.objects.filter(name="sneaky").exists()


def test_only_an_admin_creates_projects(world: World, as_alice: Client, as_adam: Client) -> None:
    from sgweb.tenancy.models import Project

    assert as_alice.post("/projects/new", {"name": "gamma"}).status_code == 403
    assert as_adam.post("/projects/new", {"name": "gamma"}).status_code == 302
    gamma = Project.objects.get(name="gamma")
    assert SecurityGroup.objects.filter(project=gamma, name="default").exists()
    answer = as_adam.post("/projects/new", {"name": "gamma"}, HTTP_X_REQUESTED_WITH="fetch")
    assert answer.status_code == 409
    assert answer.json()["errors"]["name"]
