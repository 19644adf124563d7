"""How one rule's matches are evaluated against a packet, as netfilter's match modules do.

A `Match` becomes a predicate over a `PacketView` (the packet as one table at one hook sees it)
once, the first time a walk reaches the rule; CIDRs and ipset members are parsed to integers so
a rule costs a few comparisons.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from functools import lru_cache

from sgweb.firewall.ir import Match
from sgweb.firewall.trace.packet import (
    HOOK_FORWARD,
    HOOK_OUTPUT,
    Packet,
    TraceError,
    protocol_number,
)

RAW = "raw"
FILTER = "filter"
# xt_icmp (IPv4) treats type 255 as "any type"; ip6t_icmp6 has no wildcard and matches 255
# literally, so Neutron's IPv6 rule with type 255 allows only type 255.
_ICMP_ANY_TYPE = 255
_IPV4_ICMP = 1

Matcher = Callable[["PacketView"], bool]


class SetIndex:
    __slots__ = ("addresses", "family", "networks")

    def __init__(self, family: int, members: tuple[str, ...]) -> None:
        self.family = family
        addresses: set[int] = set()
        networks: list[tuple[int, int]] = []
        for member in members:
            network = ipaddress.ip_network(member, strict=False)
            if network.num_addresses == 1:
                addresses.add(int(network.network_address))
            else:
                networks.append((int(network.network_address), int(network.netmask)))
        self.addresses = frozenset(addresses)
        self.networks = tuple(networks)

    def contains(self, family: int, address: int | None) -> bool:
        if address is None or family != self.family:
            return False
        if address in self.addresses:
            return True
        return any(address & mask == net for net, mask in self.networks)


class PacketView:
    """The packet's fields as the matches of one table at one hook see them."""

    __slots__ = (
        "bridged",
        "dport",
        "dst",
        "family",
        "icmp_code",
        "icmp_type",
        "in_interface",
        "physin",
        "physout",
        "proto",
        "sets",
        "sport",
        "src",
        "src_mac",
        "state",
    )

    def __init__(self, packet: Packet, table: str, state: str, sets: dict[str, SetIndex]):
        self.family = packet.family or 4
        self.src = int(ipaddress.ip_address(packet.src)) if packet.src is not None else None
        self.dst = int(ipaddress.ip_address(packet.dst)) if packet.dst is not None else None
        self.proto = packet.protocol_number
        self.sport = packet.sport
        self.dport = packet.dport
        self.icmp_type = packet.effective_icmp_type
        self.icmp_code = packet.effective_icmp_code
        self.src_mac = packet.src_mac.lower() if packet.src_mac is not None else None
        self.in_interface = packet.in_interface
        self.state = state
        self.sets = sets
        # Bridge information exists for packets that entered through a bridge port; locally
        # generated packets have none at the IP hooks.
        self.bridged = packet.physdev_in is not None and packet.hook != HOOK_OUTPUT
        self.physin = packet.physdev_in if self.bridged else None
        # The output bridge port is known only once the bridge has forwarded the packet.
        forwarded = table == FILTER and packet.hook == HOOK_FORWARD
        self.physout = packet.physdev_out if self.bridged and forwarded else None


def _interface_matches(actual: str | None, pattern: str) -> bool:
    if actual is None:
        return False
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


@lru_cache(maxsize=65536)
def _network(cidr: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(cidr, strict=False)
    return network.version, int(network.network_address), int(network.netmask)


def compile_match(match: Match, sets: Mapping[str, SetIndex]) -> Matcher:
    """A predicate for one rule's matches; each check is a small closure so a rule costs a few
    attribute reads, not a re-parse of its CIDRs."""
    checks: list[Matcher] = [*_address_checks(match), *_port_checks(match)]
    if match.in_interface is not None:
        in_interface = match.in_interface
        checks.append(lambda v: _interface_matches(v.in_interface, in_interface))
    if match.protocol is not None:
        number = protocol_number(match.protocol)
        if number is not None:
            checks.append(lambda v: v.proto == number)
    if match.icmp_type is not None and not (
        match.icmp_type == _ICMP_ANY_TYPE and protocol_number(match.protocol) == _IPV4_ICMP
    ):
        checks.append(_icmp_check(match.icmp_type, match.icmp_code))
    if (
        match.physdev_in is not None
        or match.physdev_out is not None
        or match.physdev_is_bridged
        or match.physdev_is_in
    ):
        checks.append(_physdev_check(match))
    if match.states:
        states = frozenset(s.upper() for s in match.states)
        checks.append(lambda v: v.state in states)
    if match.mac_source is not None:
        mac = match.mac_source.lower()
        checks.append(lambda v: v.src_mac == mac)
    if match.match_set is not None:
        checks.append(_set_check(match, sets))
    return _all_of(checks)


def _address_checks(match: Match) -> list[Matcher]:
    checks: list[Matcher] = []
    for cidr, attribute in ((match.source, "src"), (match.destination, "dst")):
        if cidr is None:
            continue
        version, net, mask = _network(cidr)

        def address_check(
            v: PacketView,
            version: int = version,
            net: int = net,
            mask: int = mask,
            a: str = attribute,
        ) -> bool:
            address = getattr(v, a)
            return v.family == version and address is not None and address & mask == net

        checks.append(address_check)
    return checks


def _port_checks(match: Match) -> list[Matcher]:
    checks: list[Matcher] = []
    for port_range, attribute in (
        (match.source_port, "sport"),
        (match.destination_port, "dport"),
        (match.multiport_destination, "dport"),
    ):
        if port_range is None:
            continue
        low, high = port_range.low, port_range.high

        def port_check(v: PacketView, low: int = low, high: int = high, a: str = attribute) -> bool:
            port = getattr(v, a)
            return port is not None and low <= port <= high

        checks.append(port_check)
    return checks


def _icmp_check(icmp_type: int, icmp_code: int | None) -> Matcher:
    def icmp_check(v: PacketView) -> bool:
        if v.icmp_type != icmp_type:
            return False
        return icmp_code is None or v.icmp_code == icmp_code

    return icmp_check


def _physdev_check(match: Match) -> Matcher:
    physdev_in, physdev_out = match.physdev_in, match.physdev_out
    is_bridged, is_in = match.physdev_is_bridged, match.physdev_is_in

    def physdev_check(v: PacketView) -> bool:
        if not v.bridged:
            return False
        if is_bridged and v.physout is None:
            return False
        if is_in and v.physin is None:
            return False
        if physdev_in is not None and not _interface_matches(v.physin, physdev_in):
            return False
        return physdev_out is None or _interface_matches(v.physout, physdev_out)

    return physdev_check


def _set_check(match: Match, sets: Mapping[str, SetIndex]) -> Matcher:
    ipset = sets.get(match.match_set or "")
    if ipset is None:
        raise TraceError(f"rule names ipset {match.match_set!r}, which is not compiled")
    attribute = "dst" if match.match_set_direction == "dst" else "src"
    return lambda v: ipset.contains(v.family, getattr(v, attribute))


def _all_of(checks: list[Matcher]) -> Matcher:
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    frozen_checks = tuple(checks)

    def all_checks(v: PacketView) -> bool:
        return all(check(v) for check in frozen_checks)

    return all_checks
