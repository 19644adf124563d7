"""Security-group words for rules and packets, and which rule comes nearest to a packet.

Used by `explain` for its sentences and by the dashboard to label rules the same way:
"tcp/22 from 198.51.100.0/24", "icmp type 8 from group web", "udp/53 to 203.0.113.9".
Also the one place for the words of the built-in rules (by `Origin` kind): as a rule's label
(`sgweb.firewall.trace.labels`, live counters and the agent) and as a step of a trace page
(`sgweb.dashboard.tracepaint`), the ICMPv6 message names, and which origins are plumbing.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from sgweb.firewall.ir import (
    ORIGIN_ACCEPT_UNFILTERED,
    ORIGIN_CONNTRACK_ZONE,
    ORIGIN_DHCP,
    ORIGIN_DHCP_SPOOF,
    ORIGIN_ESTABLISHED,
    ORIGIN_FALLBACK,
    ORIGIN_ICMPV6,
    ORIGIN_INVALID,
    ORIGIN_JUMP,
    ORIGIN_LOG_ACCEPT,
    ORIGIN_LOG_DROP,
    ORIGIN_NOTRACK,
    ORIGIN_PORT_SECURITY_OFF,
    ORIGIN_RA_SPOOF,
)
from sgweb.firewall.model import EGRESS, INGRESS, HostState, Port, SecurityGroupRule
from sgweb.firewall.protocols import NAME_BY_NUMBER
from sgweb.firewall.trace.packet import Packet, TraceError, protocol_number

# Aspects in which a rule can differ from a packet.
ASPECT_PROTOCOL = "protocol"
ASPECT_PORT = "port"
ASPECT_ICMP_TYPE = "icmp-type"
ASPECT_REMOTE = "remote"

# Origins that are plumbing: they route the packet to the right chain but decide nothing.
PLUMBING_ORIGINS = frozenset({ORIGIN_JUMP, ORIGIN_CONNTRACK_ZONE, ORIGIN_NOTRACK})

ICMPV6_NAMES = {
    130: "multicast listener query",
    131: "multicast listener report",
    132: "multicast listener done",
    133: "router solicitation",
    134: "router advertisement",
    135: "neighbour solicitation",
    136: "neighbour advertisement",
    143: "multicast listener report v2",
}

# A built-in rule's label: what the rule does and why it is there.
ORIGIN_RULE_LABELS = {
    ORIGIN_INVALID: "drop INVALID packets",
    ORIGIN_ESTABLISHED: "allow RELATED,ESTABLISHED (replies and continuations)",
    ORIGIN_DHCP_SPOOF: "drop DHCP replies sent by the VM (it may not act as a DHCP server)",
    ORIGIN_RA_SPOOF: "drop router advertisements sent by the VM",
    ORIGIN_FALLBACK: "default drop",
    ORIGIN_PORT_SECURITY_OFF: "port security off: accept",
    ORIGIN_ACCEPT_UNFILTERED: "accept traffic of no filtered port",
    ORIGIN_CONNTRACK_ZONE: "conntrack zone of the port",
    ORIGIN_NOTRACK: "stateless group: no connection tracking",
    ORIGIN_LOG_DROP: "packet log: what the default drop is about to drop (rate-limited)",
    ORIGIN_LOG_ACCEPT: "packet log: the next rule is about to accept (rate-limited)",
}

# A built-in rule as a step of a traced packet's path: what it decided about the packet.
ORIGIN_STEP_WORDS = {
    ORIGIN_INVALID: "drop INVALID packets",
    ORIGIN_ESTABLISHED: "RELATED,ESTABLISHED: part of a known connection",
    ORIGIN_DHCP: "DHCP",
    ORIGIN_DHCP_SPOOF: "the VM may not answer as a DHCP server",
    ORIGIN_ICMPV6: "ICMPv6 neighbour discovery / router advertisements",
    ORIGIN_RA_SPOOF: "the VM may not send router advertisements",
    ORIGIN_PORT_SECURITY_OFF: "port security off: not filtered",
    ORIGIN_ACCEPT_UNFILTERED: "accept: the port chains let it through",
    ORIGIN_LOG_DROP: "copied to the packet log (DROP event)",
    ORIGIN_LOG_ACCEPT: "copied to the packet log (ACCEPT event)",
}

_PORTED_PROTOCOLS = frozenset({6, 17, 33, 132, 136})  # tcp udp dccp sctp udplite
_ICMP = {4: 1, 6: 58}


def protocol_label(protocol: str | int | None) -> str:
    try:
        number = protocol_number(protocol)
    except TraceError:
        return str(protocol)
    if number is None:
        return "any protocol"
    return NAME_BY_NUMBER.get(number, f"protocol {number}")


def _rule_protocol(rule: SecurityGroupRule) -> int | None:
    number = protocol_number(rule.protocol)
    # Neutron accepts "icmp" in an IPv6 rule and means ICMPv6.
    if number == 1 and rule.ethertype == "IPv6":
        return 58
    return number


_ICMP_V4 = 1
_ICMP_ANY_TYPE = 255


def describe_rule(rule: SecurityGroupRule, state: HostState | None = None) -> str:
    """E.g. "tcp/22 from 198.51.100.0/24", "icmp type 8 from group web", "any protocol to any"."""
    number = _rule_protocol(rule)
    what = protocol_label(number)
    low, high = rule.port_range_min, rule.port_range_max
    if number in _ICMP.values():
        if number == _ICMP_V4 and low == _ICMP_ANY_TYPE:
            what += " of any type (type 255)"  # only IPv4's icmp match reads 255 so
        elif low is not None:
            what += f" type {low}"
            if high is not None:
                what += f" code {high}"
    elif low is not None:
        what += f"/{low}" if high is None or high == low else f"/{low}-{high}"
    word = "from" if rule.direction == INGRESS else "to"
    if rule.remote_ip_prefix:
        remote = rule.remote_ip_prefix
    elif rule.remote_group_id:
        group = state.group(rule.remote_group_id) if state is not None else None
        remote = f"group {(group.name if group and group.name else rule.remote_group_id)}"
    else:
        remote = "any"
    return f"{what} {word} {remote}"


def describe_packet(packet: Packet, direction: str | None) -> str:
    """E.g. "tcp/5432 from 198.51.100.7" (ingress) or "udp/53 to 203.0.113.9" (egress)."""
    number = packet.protocol_number
    what = protocol_label(number)
    if packet.is_icmp:
        what += f" type {packet.effective_icmp_type} code {packet.effective_icmp_code}"
    elif number in _PORTED_PROTOCOLS and packet.dport is not None:
        what += f"/{packet.dport}"
    if direction == EGRESS:
        return f"{what} to {packet.dst or 'any address'}"
    return f"{what} from {packet.src or 'any address'}"


@lru_cache(maxsize=4096)
def _parsed_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def in_network(address: str | None, cidr: str) -> bool:
    network = _parsed_network(cidr)
    if address is None or network is None:
        return False
    try:
        return ipaddress.ip_address(address) in network
    except ValueError:
        return False


@lru_cache(maxsize=64)
def _member_index(members: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    # Remote groups can have thousands of members; the nearest-rule search asks about each
    # group once per rule, so the exact addresses go into a set and only CIDRs are scanned.
    exact = {m.removesuffix("/32").removesuffix("/128") for m in members}
    networks = tuple(m for m in exact if "/" in m)
    canonical = set()
    for address in exact - set(networks):
        try:
            canonical.add(str(ipaddress.ip_address(address)))
        except ValueError:
            continue
    return frozenset(canonical), networks


def _is_member(address: str | None, members: tuple[str, ...]) -> bool:
    if address is None:
        return False
    exact, networks = _member_index(members)
    try:
        canonical = str(ipaddress.ip_address(address))
    except ValueError:
        return False
    return canonical in exact or any(in_network(canonical, cidr) for cidr in networks)


def rule_differences(
    rule: SecurityGroupRule, packet: Packet, state: HostState | None = None
) -> tuple[str, ...]:
    """The aspects in which `rule` does not cover `packet` (empty: it would allow it)."""
    differs: list[str] = []
    wanted = _rule_protocol(rule)
    number = packet.protocol_number
    if wanted is not None and wanted != number:
        differs.append(ASPECT_PROTOCOL)
    low, high = rule.port_range_min, rule.port_range_max
    if wanted == _ICMP_V4 and low == _ICMP_ANY_TYPE:
        pass  # IPv4's icmp match reads type 255 as any type (ICMPv6's does not)
    elif wanted in _ICMP.values() and low is not None:
        icmp_type = packet.effective_icmp_type if packet.is_icmp else None
        icmp_code = packet.effective_icmp_code if packet.is_icmp else None
        if icmp_type != low or (high is not None and icmp_code != high):
            differs.append(ASPECT_ICMP_TYPE)
    elif wanted is not None and low is not None:
        top = low if high is None else high
        if packet.dport is None or not low <= packet.dport <= top:
            differs.append(ASPECT_PORT)
    remote = packet.src if rule.direction == INGRESS else packet.dst
    if rule.remote_ip_prefix:
        if not in_network(remote, rule.remote_ip_prefix):
            differs.append(ASPECT_REMOTE)
    elif rule.remote_group_id:
        members = state.members(rule.remote_group_id) if state is not None else ()
        if not _is_member(remote, tuple(members)):
            differs.append(ASPECT_REMOTE)
    return tuple(differs)


_NearestKey = tuple[int, bool, int, int, str]


def nearest_rule(
    port: Port, direction: str, packet: Packet, state: HostState
) -> tuple[SecurityGroupRule, str, tuple[str, ...]] | None:
    """The port's rule of this direction and family closest to allowing the packet: fewest
    differing aspects, then one of the same protocol (a port is easier to widen than a protocol
    to change), then the port's group order, then the group's rule order."""
    ethertype = "IPv6" if packet.family == 6 else "IPv4"
    best: tuple[tuple[int, bool, int, int, str], SecurityGroupRule, str, tuple[str, ...]] | None = (
        None
    )
    for group_rank, group_id in enumerate(port.security_groups):
        group = state.group(group_id)
        if group is None:
            continue
        for rule_rank, rule in enumerate(group.rules):
            if rule.direction != direction or rule.ethertype != ethertype:
                continue
            differs = rule_differences(rule, packet, state)
            key = (len(differs), ASPECT_PROTOCOL in differs, group_rank, rule_rank, rule.id)
            if best is None or key < best[0]:
                best = (key, rule, group_id, differs)
    if best is None:
        return None
    return best[1], best[2], best[3]
