"""Refusals: what the kernel would refuse is refused first, and the message names the object."""

from __future__ import annotations

import dataclasses

import pytest

from sgweb.firewall import FirewallError, normalize_cidr, validate_rule
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import AddressPair, HostState, Port, SecurityGroup, SecurityGroupRule

PORT_ID = "6e3f2eda-3230-45e8-9be5-f382af5b83ea"


def _rule(**fields: object) -> SecurityGroupRule:
    values: dict[str, object] = {"id": "r-1", "direction": "ingress", "ethertype": "IPv4"}
    values.update(fields)
    return SecurityGroupRule(**values)  # type: ignore[arg-type]


def _refusal(rule: SecurityGroupRule) -> str:
    with pytest.raises(FirewallError) as caught:
        validate_rule(rule)
    return str(caught.value)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"remote_ip_prefix": "192.0.2.300/24"}, "remote_ip_prefix", "not a valid CIDR"),
        ({"remote_ip_prefix": "2001:db8::/32"}, "remote_ip_prefix", "IPv6 CIDR in an IPv4"),
        ({"remote_ip_prefix": "192.0.2.0/33"}, "remote_ip_prefix", "prefix length"),
        ({"protocol": "tcp", "port_range_min": 0}, "port_range_min", "outside 1-65535"),
        (
            {"protocol": "tcp", "port_range_min": 1, "port_range_max": 70000},
            "port_range_max",
            "outside",
        ),
        (
            {"protocol": "udp", "port_range_min": 90, "port_range_max": 80},
            "port_range_min",
            "above",
        ),
        ({"protocol": "tcp", "port_range_max": 80}, "port_range_min", "needs a minimum"),
        ({"protocol": "icmp", "port_range_min": 256}, "port_range_min", "ICMP type 256"),
        (
            {"protocol": "icmp", "port_range_min": 8, "port_range_max": 300},
            "port_range_max",
            "code",
        ),
        ({"protocol": "icmp", "port_range_max": 0}, "port_range_max", "needs an ICMP type"),
        ({"protocol": "bogus"}, "protocol", "unknown protocol"),
        ({"protocol": "256"}, "protocol", "outside 0-255"),
        ({"protocol": "ipv6-icmp"}, "protocol", "IPv4 rule"),
        ({"protocol": "gre", "port_range_min": 1}, "port_range_min", "takes no port range"),
        ({"port_range_min": 22, "port_range_max": 22}, "port_range_min", "any protocol"),
        (
            {"remote_ip_prefix": "192.0.2.0/24", "remote_group_id": "g"},
            "remote_ip_prefix",
            "exclusive",
        ),
        ({"direction": "sideways"}, "direction", "not ingress or egress"),
        ({"ethertype": "IPX"}, "ethertype", "not IPv4 or IPv6"),
        ({"id": 'evil" -j ACCEPT'}, "id", "letters, digits"),
    ],
)
def test_a_bad_rule_is_refused_with_its_id_and_field(
    fields: dict[str, object], field: str, words: str
) -> None:
    message = _refusal(_rule(**fields))
    assert "security group rule" in message
    assert f"field {field}" in message
    assert words in message


def test_a_valid_rule_comes_back_normalised() -> None:
    rule = validate_rule(_rule(protocol="6", port_range_min=22, remote_ip_prefix="192.0.2.7/24"))
    assert (rule.protocol, rule.port_range_min, rule.port_range_max) == ("tcp", 22, 22)
    assert rule.remote_ip_prefix == "192.0.2.0/24"


@pytest.mark.parametrize("alias", ["icmpv6", "ipv6-icmp", "58", "ICMPv6"])
def test_icmpv6_aliases_normalise_to_ipv6_icmp(alias: str) -> None:
    assert validate_rule(_rule(ethertype="IPv6", protocol=alias)).protocol == "ipv6-icmp"


def test_protocol_zero_and_any_mean_every_protocol() -> None:
    assert validate_rule(_rule(protocol="0")).protocol is None
    assert validate_rule(_rule(protocol="any")).protocol is None


def test_normalize_cidr_clears_host_bits_and_adds_a_prefix() -> None:
    assert normalize_cidr("192.0.2.77/24") == "192.0.2.0/24"
    assert normalize_cidr("2001:DB8:0:0::1") == "2001:db8::1/128"
    with pytest.raises(ValueError):
        normalize_cidr("2001:db8::/32", "IPv4")


def _port(**fields: object) -> Port:
    values: dict[str, object] = {"id": PORT_ID, "mac_address": "fa:16:3e:f3:1e:c0"}
    values.update(fields)
    return Port(**values)  # type: ignore[arg-type]


def _host_refusal(state: HostState) -> str:
    with pytest.raises(FirewallError) as caught:
        compile_host(state)
    return str(caught.value)


def test_a_device_name_past_ifnamsiz_is_refused_like_the_articles_failure() -> None:
    message = _host_refusal(HostState(ports=(_port(device="tap" + PORT_ID),)))
    assert f"port {PORT_ID}, field device" in message
    assert "shorter than IFNAMSIZ" in message


def test_a_chain_prefix_that_makes_chain_names_too_long_is_refused() -> None:
    message = _host_refusal(HostState(ports=(_port(),), chain_prefix="neutron-openvswitch-agent"))
    assert "chain_prefix" in message and "at most 28" in message


def test_a_bad_mac_is_refused_naming_the_port() -> None:
    message = _host_refusal(HostState(ports=(_port(mac_address="fa:16:3e:zz:00:01"),)))
    assert f"port {PORT_ID}, field mac_address" in message


def test_a_multicast_mac_is_refused() -> None:
    assert "multicast" in _host_refusal(HostState(ports=(_port(mac_address="01:00:5e:00:00:01"),)))


def test_a_bad_fixed_ip_or_pair_is_refused_naming_the_port() -> None:
    assert "field fixed_ips" in _host_refusal(HostState(ports=(_port(fixed_ips=("192.0.2",)),)))
    pairs = (AddressPair("192.0.2.0/40"),)
    assert "allowed_address_pairs" in _host_refusal(
        HostState(ports=(_port(allowed_address_pairs=pairs),))
    )


def test_an_unknown_group_on_a_port_is_refused() -> None:
    message = _host_refusal(HostState(ports=(_port(security_groups=("nope",)),)))
    assert "unknown security group nope" in message


def test_an_unknown_remote_group_is_refused_naming_the_rule() -> None:
    group = SecurityGroup("g1", rules=(_rule(id="r-remote", remote_group_id="ghost"),))
    state = HostState(ports=(_port(security_groups=("g1",)),), security_groups=(group,))
    message = _host_refusal(state)
    assert "security group rule r-remote, field remote_group_id" in message
    assert "unknown remote group ghost" in message


def test_two_ports_whose_chains_would_collide_are_refused() -> None:
    twin = _port(id=PORT_ID[:10] + "ffff", mac_address="fa:16:3e:00:00:01")
    message = _host_refusal(HostState(ports=(_port(), twin)))
    assert "collide" in message


def test_a_bad_member_address_is_refused_naming_the_group() -> None:
    state = HostState(remote_group_members=(("g1", ("not-an-ip",)),))
    assert "security group g1, field members" in _host_refusal(state)


def test_validation_errors_are_value_errors_for_form_code() -> None:
    assert issubclass(FirewallError, ValueError)


def test_a_bad_rule_in_a_group_is_refused_by_the_compiler_too() -> None:
    bad = _rule(id="r-bad", protocol="tcp", port_range_min=99999)
    group = SecurityGroup("g1", rules=(bad,))
    state = HostState(ports=(_port(security_groups=("g1",)),), security_groups=(group,))
    assert "security group rule r-bad" in _host_refusal(state)


def test_user_names_never_reach_rule_text() -> None:
    group = SecurityGroup(
        "g1", name='web" -j ACCEPT', rules=(_rule(protocol="tcp", port_range_min=22),)
    )
    port = dataclasses.replace(_port(security_groups=("g1",)), name="evil -j ACCEPT")
    from sgweb.firewall.render import render_iptables

    text = render_iptables(compile_host(HostState(ports=(port,), security_groups=(group,))), 4)
    assert "evil" not in text and "web" not in text


def test_rule_problems_name_every_bad_field_with_a_code_and_its_values():
    from sgweb.firewall.model import SecurityGroupRule
    from sgweb.firewall.validate import rule_problems

    problems = rule_problems(
        SecurityGroupRule(
            id="r1", direction="sideways", ethertype="IPv4", protocol="tcp",
            port_range_min=70000, port_range_max=80, remote_ip_prefix="2001:db8::/64",
        )
    )  # fmt: skip
    found = {(p.field, p.code) for p in problems}
    assert found == {
        ("direction", "direction"),
        ("port_range_min", "port-out-of-range"),
        ("remote_ip_prefix", "cidr-family"),
    }
    assert next(p for p in problems if p.code == "port-out-of-range").values == {"port": 70000}
