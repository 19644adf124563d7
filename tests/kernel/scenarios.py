"""Seeded random security groups, rules and ports for the kernel tier.

Addresses come only from the documentation ranges. Ports can be given (so a topology built once
serves many random rule sets) or generated.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import replace

from sgweb.firewall.model import (
    EGRESS,
    INGRESS,
    IPV4,
    IPV6,
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)

CIDRS = {
    IPV4: ("198.51.100.0/24", "198.51.100.7/32", "203.0.113.0/24", "192.0.2.0/24",
           "192.0.2.0/28", "0.0.0.0/0"),
    IPV6: ("2001:db8:1::/64", "2001:db8:1::7/128", "2001:db8:2::/64", "2001:db8::/64",
           "2001:db8::/32", "::/0"),
}  # fmt: skip
PROBE_PORTS = (22, 53, 80, 443, 5432, 8080)


def random_rule(rng: random.Random, rule_id: str, group_ids: list[str]) -> SecurityGroupRule:
    ethertype = rng.choice((IPV4, IPV4, IPV6))
    direction = rng.choice((INGRESS, EGRESS))
    protocol = rng.choice(("tcp", "udp", "icmp", None, "tcp"))
    if protocol == "icmp" and ethertype == IPV6:
        protocol = "ipv6-icmp"
    low = high = None
    if protocol in ("tcp", "udp") and rng.random() < 0.8:
        low = rng.choice(PROBE_PORTS)
        high = low if rng.random() < 0.6 else min(65535, low + rng.choice((1, 10, 100)))
    elif protocol in ("icmp", "ipv6-icmp") and rng.random() < 0.4:
        low = 8 if ethertype == IPV4 else 128  # echo request
        high = 0 if rng.random() < 0.5 else None
    remote_ip_prefix = remote_group_id = None
    pick = rng.random()
    if pick < 0.4:
        remote_ip_prefix = rng.choice(CIDRS[ethertype])
    elif pick < 0.7 and group_ids:
        remote_group_id = rng.choice(group_ids)
    return SecurityGroupRule(
        id=rule_id,
        direction=direction,
        ethertype=ethertype,
        protocol=protocol,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=remote_ip_prefix,
        remote_group_id=remote_group_id,
    )


# What the wide generator adds: every protocol the kernel tier's probes send (each family of
# conntrack: TCP, UDP, UDP-Lite, SCTP and ICMP have trackers of their own; DCCP, GRE and the
# rest are tracked by addresses), ICMP types that conntrack treats differently (requests,
# replies, errors, neighbour discovery and MLD, 255 which only IPv4 reads as "any").
WIDE_PROTOCOLS = ("tcp", "udp", "icmp", None, "udplite", "253", "tcp", "icmp", "sctp", "dccp",
                  "gre")  # fmt: skip
PORT_PROTOCOLS = ("tcp", "udp", "udplite", "sctp", "dccp")
WIDE_ICMP_TYPES = {
    IPV4: (0, 3, 5, 8, 11, 12, 13, 15, 255),
    IPV6: (1, 2, 3, 4, 128, 129, 130, 135, 139, 255),
}


def random_wide_rule(rng: random.Random, rule_id: str, group_ids: list[str]) -> SecurityGroupRule:
    """Like random_rule, over every protocol and ICMP type the batch probes send."""
    rule = random_rule(rng, rule_id, group_ids)
    protocol = rng.choice(WIDE_PROTOCOLS)
    if protocol == "icmp" and rule.ethertype == IPV6:
        protocol = "ipv6-icmp"
    low = high = None
    if protocol in PORT_PROTOCOLS and rng.random() < 0.7:
        low = rng.choice(PROBE_PORTS)
        high = low if rng.random() < 0.6 else min(65535, low + rng.choice((1, 10, 100)))
    elif protocol in ("icmp", "ipv6-icmp") and rng.random() < 0.6:
        low = rng.choice(WIDE_ICMP_TYPES[rule.ethertype])
        high = 0 if rng.random() < 0.3 else None
    return replace(rule, protocol=protocol, port_range_min=low, port_range_max=high)


def random_groups(
    rng: random.Random,
    count: int,
    max_rules: int,
    *,
    wide: bool = False,
    stateless_chance: float = 0.1,
) -> tuple[SecurityGroup, ...]:
    ids = [f"{rng.getrandbits(32):08x}-{index:04x}-4000-8000-{rng.getrandbits(48):012x}"
           for index in range(count)]  # fmt: skip
    groups = []
    make_rule = random_wide_rule if wide else random_rule
    for group_id in ids:
        rules = tuple(
            make_rule(rng, f"{group_id[:8]}-r{n}", ids) for n in range(rng.randint(0, max_rules))
        )
        stateful = rng.random() > stateless_chance
        groups.append(SecurityGroup(group_id, f"g{group_id[:4]}", stateful=stateful, rules=rules))
    return tuple(groups)


def make_ports(count: int, *, first: int = 20, dhcp_server: str = "192.0.2.2") -> tuple[Port, ...]:
    ports = []
    for index in range(first, first + count):
        ports.append(
            Port(
                id=f"{index:08x}-5555-4555-8555-{index:012x}",
                mac_address=f"fa:16:3e:00:01:{index:02x}",
                fixed_ips=(f"192.0.2.{index}", f"2001:db8::{index:x}"),
                dhcp_servers=(dhcp_server,),
            )
        )
    return tuple(ports)


def make_two_network_ports(count: int, *, first: int = 20) -> tuple[Port, ...]:
    """Ports alternating between two networks (192.0.2.0/24 and 203.0.113.0/24 with their
    IPv6 subnets) on one host: the host's conntrack zones must keep both apart."""
    ports = []
    for offset, index in enumerate(range(first, first + count)):
        second = offset % 2 == 1
        v4 = f"203.0.113.{index}" if second else f"192.0.2.{index}"
        v6 = f"2001:db8:3::{index:x}" if second else f"2001:db8::{index:x}"
        ports.append(
            Port(
                id=f"{index:08x}-6666-4666-8666-{index:012x}",
                mac_address=f"fa:16:3e:00:02:{index:02x}",
                fixed_ips=(v4, v6),
                dhcp_servers=("192.0.2.2",) if not second else (),
                network_id="net-b" if second else "net-a",
            )
        )
    return tuple(ports)


def members_of(
    groups: tuple[SecurityGroup, ...], ports: tuple[Port, ...], extra: dict | None = None
):
    members = []
    for group in groups:
        addresses: list[str] = []
        for port in ports:
            if group.id in port.security_groups:
                addresses.extend(port.fixed_ips)
                addresses.extend(pair.ip_address for pair in port.allowed_address_pairs)
        addresses.extend((extra or {}).get(group.id, ()))
        members.append((group.id, tuple(addresses)))
    return tuple(members)


def random_state(
    seed: int,
    ports: tuple[Port, ...],
    *,
    groups: int = 3,
    max_rules: int = 6,
    psec_off_chance: float = 0.1,
    wide: bool = False,
    stateless_chance: float = 0.1,
) -> HostState:
    """Random groups assigned at random to the given ports (their identities are kept)."""
    rng = random.Random(seed)
    group_list = random_groups(rng, groups, max_rules, wide=wide, stateless_chance=stateless_chance)
    assigned = []
    for port in ports:
        chosen = tuple(
            g.id for g in rng.sample(group_list, rng.randint(0, min(2, len(group_list))))
        )
        pairs = (AddressPair(f"192.0.2.{200 + len(assigned)}"),) if rng.random() < 0.15 else ()
        assigned.append(
            replace(
                port,
                security_groups=chosen,
                allowed_address_pairs=pairs,
                port_security_enabled=rng.random() >= psec_off_chance,
            )
        )
    ports_tuple = tuple(assigned)
    return HostState(
        ports=ports_tuple,
        security_groups=group_list,
        remote_group_members=members_of(group_list, ports_tuple),
        enable_ipset=rng.random() < 0.75,
    )


def change_group_rules(state: HostState, seed: int) -> HostState:
    """The same state with one used group's rules replaced by new random ones."""
    rng = random.Random(seed)
    used = [g for g in state.security_groups if any(g.id in p.security_groups for p in state.ports)]
    target = rng.choice(used or list(state.security_groups))
    ids = [g.id for g in state.security_groups]
    new_rules = tuple(
        random_rule(rng, f"{target.id[:8]}-x{n}", ids) for n in range(rng.randint(1, 6))
    )
    groups = tuple(replace(g, rules=new_rules) if g.id == target.id else g
                   for g in state.security_groups)  # fmt: skip
    return replace(state, security_groups=groups)


def add_remote_member(state: HostState, address: str) -> HostState:
    """A port on another host joined every group: only remote group members change."""
    members = tuple((gid, (*addresses, address)) for gid, addresses in state.remote_group_members)
    return replace(state, remote_group_members=members)


# The remotes random probes come from, with the address of each family (the labs' "outside"
# and "other" remotes).
REMOTE_ADDRESSES = {
    "outside": ("198.51.100.7", "2001:db8:1::7"),
    "other": ("203.0.113.9", "2001:db8:2::9"),
}


def an_ingress_rule_of(
    state: HostState, port_id: str, rng: random.Random
) -> SecurityGroupRule | None:
    """One of the ingress rules guarding the port (None for a remote or an unguarded port):
    random probes aim at it so that allowed traffic is well represented too."""
    port = next((p for p in state.ports if p.id == port_id), None)
    if port is None:
        return None
    rules = [
        rule
        for group in state.security_groups
        if group.id in port.security_groups
        for rule in group.rules
        if rule.direction == INGRESS
    ]
    return rng.choice(rules) if rules else None


def a_source_for(
    state: HostState, rule: SecurityGroupRule, destination: str, family: int, rng: random.Random
) -> str | None:
    """An endpoint the rule's remote side lets in (a group member or a remote in the CIDR)."""
    if rule.remote_group_id is not None:
        members = [p.id for p in state.ports if rule.remote_group_id in p.security_groups]
        members = [m for m in members if m != destination]
        return rng.choice(members) if members else None
    candidates = []
    for name, addresses in REMOTE_ADDRESSES.items():
        address = ipaddress.ip_address(addresses[0 if family == 4 else 1])
        if rule.remote_ip_prefix is None or address in ipaddress.ip_network(rule.remote_ip_prefix):
            candidates.append(name)
    return rng.choice(candidates) if candidates else None
