"""Small hand-made host states that exercise every compiler feature (documentation addresses)."""

from __future__ import annotations

import dataclasses

from sgweb.firewall.model import (
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)

WEB = "11111111-aaaa-4aaa-8aaa-000000000001"
DB = "22222222-bbbb-4bbb-8bbb-000000000002"
STATELESS = "33333333-cccc-4ccc-8ccc-000000000003"

PORT_A = "aaaaaaaa-0001-4000-8000-00000000000a"
PORT_B = "bbbbbbbb-0002-4000-8000-00000000000b"
PORT_C = "cccccccc-0003-4000-8000-00000000000c"
PORT_D = "dddddddd-0004-4000-8000-00000000000d"
PORT_E = "eeeeeeee-0005-4000-8000-00000000000e"


def _rule(
    rule_id: str, direction: str, ethertype: str = "IPv4", **fields: object
) -> SecurityGroupRule:
    return SecurityGroupRule(id=rule_id, direction=direction, ethertype=ethertype, **fields)  # type: ignore[arg-type]


WEB_GROUP = SecurityGroup(
    WEB,
    name="web",
    rules=(
        _rule("web-egress-v4", "egress"),
        _rule("web-egress-v6", "egress", "IPv6"),
        _rule("web-http", "ingress", protocol="tcp", port_range_min=80, port_range_max=80),
        _rule(
            "web-range",
            "ingress",
            protocol="tcp",
            port_range_min=8000,
            port_range_max=8080,
            remote_ip_prefix="198.51.100.0/24",
        ),
        _rule("web-ping", "ingress", protocol="icmp", port_range_min=8, port_range_max=0),
        _rule("web-from-db", "ingress", protocol="tcp", port_range_min=22, remote_group_id=DB),
        _rule("web-v6-from-db", "ingress", "IPv6", protocol="ipv6-icmp", remote_group_id=DB),
        _rule("web-gre", "ingress", protocol="47", remote_ip_prefix="203.0.113.0/25"),
    ),
)
DB_GROUP = SecurityGroup(
    DB,
    name="db",
    rules=(
        _rule("db-egress-v4", "egress"),
        _rule("db-pg", "ingress", protocol="tcp", port_range_min=5432, remote_group_id=WEB),
        _rule("db-dns", "egress", protocol="udp", port_range_min=53, remote_ip_prefix="192.0.2.2"),
        _rule("db-udplite", "ingress", protocol="udplite", port_range_min=9, port_range_max=9),
        _rule("db-sctp", "ingress", protocol="132", port_range_min=3868, port_range_max=3868),
        _rule("db-dccp", "ingress", protocol="dccp", port_range_min=5004, port_range_max=5004),
        _rule("db-ah", "ingress", protocol="51", remote_ip_prefix="192.0.2.128/25"),
        _rule("db-any-icmp", "egress", protocol="icmp", port_range_min=255),
        _rule(
            "db-v6",
            "ingress",
            "IPv6",
            protocol="tcp",
            port_range_min=443,
            port_range_max=443,
            remote_ip_prefix="2001:db8:100::/48",
        ),
    ),
)
STATELESS_GROUP = SecurityGroup(
    STATELESS,
    name="udp-stateless",
    stateful=False,
    rules=(
        _rule("sl-in", "ingress", protocol="udp", port_range_min=5000, port_range_max=5001),
        _rule("sl-out", "egress", protocol="udp"),
    ),
)


def host_state(enable_ipset: bool = True) -> HostState:
    ports = (
        Port(
            PORT_A,
            "fa:16:3e:00:00:0a",
            ("192.0.2.10", "2001:db8:1::a"),
            security_groups=(WEB,),
            dhcp_servers=("192.0.2.2", "2001:db8:1::2"),
            allowed_address_pairs=(
                AddressPair("192.0.2.200"),
                AddressPair("203.0.113.16/28", "fa:16:3e:00:01:0a"),
            ),
        ),
        Port(
            PORT_B,
            "fa:16:3e:00:00:0b",
            ("192.0.2.11",),
            security_groups=(DB, WEB),
            network_id="net-1",
        ),
        Port(PORT_C, "fa:16:3e:00:00:0c", ("192.0.2.12",), security_groups=(STATELESS,)),
        Port(PORT_D, "fa:16:3e:00:00:0d", ("192.0.2.13",), port_security_enabled=False),
        Port(PORT_E, "fa:16:3e:00:00:0e", ("192.0.2.14", "2001:db8:1::e")),
    )
    return HostState(
        ports=ports,
        security_groups=(WEB_GROUP, DB_GROUP, STATELESS_GROUP),
        remote_group_members=(
            (WEB, ("192.0.2.10", "2001:db8:1::a", "192.0.2.200", "192.0.2.11")),
            (DB, ("192.0.2.11", "198.51.100.7", "2001:db8:9::7")),
        ),
        enable_ipset=enable_ipset,
    )


def with_group_rules(
    state: HostState, group_id: str, rules: tuple[SecurityGroupRule, ...]
) -> HostState:
    groups = tuple(
        dataclasses.replace(g, rules=rules) if g.id == group_id else g
        for g in state.security_groups
    )
    return dataclasses.replace(state, security_groups=groups)


def with_members(state: HostState, group_id: str, members: tuple[str, ...]) -> HostState:
    listed = tuple(
        (gid, members if gid == group_id else addresses)
        for gid, addresses in state.remote_group_members
    )
    return dataclasses.replace(state, remote_group_members=listed)


def without_port(state: HostState, port_id: str) -> HostState:
    return dataclasses.replace(state, ports=tuple(p for p in state.ports if p.id != port_id))


def with_port(state: HostState, port: Port) -> HostState:
    return dataclasses.replace(state, ports=(*state.ports, port))


NEW_PORT = Port(
    "ffffffff-0006-4000-8000-00000000000f",
    "fa:16:3e:00:00:0f",
    ("192.0.2.15", "2001:db8:1::f"),
    security_groups=(DB,),
)


def changed_state(state: HostState) -> HostState:
    """A bit of everything: web gains a rule, C leaves, a new port joins db, db gains a member."""
    web_rules = (
        *WEB_GROUP.rules,
        _rule("web-https", "ingress", protocol="tcp", port_range_min=443),
    )
    state = with_group_rules(state, WEB, web_rules)
    state = without_port(state, PORT_C)
    state = with_port(state, NEW_PORT)
    return with_members(state, DB, ("192.0.2.11", "192.0.2.15", "198.51.100.7", "2001:db8:9::7"))
