"""What security groups *mean*, decided straight from the model, with no compiler involved.

The kernel tier already checks that the tracer and the kernel agree; both read the compiler's
output, so a rule the compiler forgot is invisible to that check. This oracle reads the
HostState the way an admin reads the API (plus Neutron's fixed behaviour: anti-spoofing, all
ICMPv6 out, only neighbour discovery in), so the kernel's verdict can be held against intent.

It covers what the random probes send: echo requests, TCP and UDP to ordinary ports, from a
port's own address, between stateful ports and outside addresses. `applies()` says when it has
an opinion.
"""

from __future__ import annotations

import ipaddress

from sgweb.firewall.model import EGRESS, INGRESS, IPV4, IPV6, HostState, Port, SecurityGroupRule

ICMP_PROTOCOLS = {4: ("icmp", "1"), 6: ("ipv6-icmp", "icmpv6", "58")}
PROTOCOL_ALIASES = {"tcp": ("tcp", "6"), "udp": ("udp", "17")}
ECHO_REQUEST = {4: 8, 6: 128}


def _port(state: HostState, endpoint: str) -> Port | None:
    return next((port for port in state.ports if port.id == endpoint), None)


def _is_stateful(state: HostState, port: Port) -> bool:
    if not port.security_groups:
        return True
    return any(
        group.stateful for group in state.security_groups if group.id in port.security_groups
    )


def applies(state: HostState, source: str, destination: str) -> bool:
    """The oracle only speaks about stateful filtered ports (stateless replies depend on the
    raw table's notrack layout, which is the compiler's business, checked by the tracer tier)."""
    for endpoint in (source, destination):
        port = _port(state, endpoint)
        if port is not None and port.port_security_enabled and not _is_stateful(state, port):
            return False
    return True


def _may_send_from(port: Port, address: str) -> bool:
    """The port's own addresses and its allowed address pairs (addresses or CIDRs)."""
    sender = ipaddress.ip_address(address)
    allowed = [*port.fixed_ips, *(pair.ip_address for pair in port.allowed_address_pairs)]
    return any(sender in ipaddress.ip_network(entry, strict=False) for entry in allowed)


def _protocol_matches(rule: SecurityGroupRule, protocol: str, family: int) -> bool:
    if rule.protocol is None:
        return True
    wanted = str(rule.protocol).lower()
    if protocol == "icmp":
        return wanted in ICMP_PROTOCOLS[family]
    return wanted in PROTOCOL_ALIASES[protocol]


def _ports_match(rule: SecurityGroupRule, protocol: str, dport: int | None, family: int) -> bool:
    if rule.protocol is None:
        return True
    if protocol == "icmp":
        if rule.port_range_min is not None and rule.port_range_min != ECHO_REQUEST[family]:
            return False
        return rule.port_range_max is None or rule.port_range_max == 0
    if rule.port_range_min is None:
        return True
    high = rule.port_range_max if rule.port_range_max is not None else rule.port_range_min
    return dport is not None and rule.port_range_min <= dport <= high


def _remote_matches(rule: SecurityGroupRule, state: HostState, peer_address: str) -> bool:
    address = ipaddress.ip_address(peer_address)
    if rule.remote_ip_prefix is not None:
        return address in ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
    if rule.remote_group_id is not None:
        return any(
            ipaddress.ip_address(member.split("/")[0]) == address
            if "/" not in member
            else address in ipaddress.ip_network(member, strict=False)
            for member in state.members(rule.remote_group_id)
        )
    return True


def _rules_allow(
    state: HostState,
    port: Port,
    direction: str,
    protocol: str,
    dport: int | None,
    family: int,
    peer_address: str,
) -> bool:
    ethertype = IPV4 if family == 4 else IPV6
    for group in state.security_groups:
        if group.id not in port.security_groups:
            continue
        for rule in group.rules:
            if (
                rule.direction == direction
                and rule.ethertype == ethertype
                and _protocol_matches(rule, protocol, family)
                and _ports_match(rule, protocol, dport, family)
                and _remote_matches(rule, state, peer_address)
            ):
                return True
    return False


def request_allowed(
    state: HostState,
    source: str,
    destination: str,
    source_address: str,
    destination_address: str,
    protocol: str,
    dport: int | None,
    family: int,
) -> bool:
    """Whether a new connection's first packet from source to destination gets through."""
    sender = _port(state, source)
    if sender is not None and sender.port_security_enabled:
        if not _may_send_from(sender, source_address):
            return False  # anti-spoofing
        icmpv6_out = protocol == "icmp" and family == 6  # Neutron lets every ICMPv6 out
        if not icmpv6_out and not _rules_allow(
            state, sender, EGRESS, protocol, dport, family, destination_address
        ):
            return False
    receiver = _port(state, destination)
    return (
        receiver is None
        or not receiver.port_security_enabled
        or _rules_allow(state, receiver, INGRESS, protocol, dport, family, source_address)
    )
