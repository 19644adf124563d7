"""The raw table: per-network conntrack zones (current Neutron), notrack for stateless ports.

Zones keep two networks with the same addresses from sharing connection state. A packet gets
the zone of the first CT rule it meets, so the per-tap rules (traffic from a VM) come first and
the rules for traffic arriving on a bridge from elsewhere (towards the VMs) after them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sgweb.firewall import names
from sgweb.firewall.compiled_rules import NO_MATCH, new_match, new_origin, new_rule
from sgweb.firewall.errors import port_error
from sgweb.firewall.ir import (
    CT,
    ORIGIN_CONNTRACK_ZONE,
    ORIGIN_JUMP,
    ORIGIN_NOTRACK,
    Chain,
    Rule,
)
from sgweb.firewall.model import EGRESS, INGRESS, Port

FIRST_AUTOMATIC_ZONE = 4097
NOTRACK_ARGS = ("--notrack",)


def assign_zones(
    filtered: Sequence[Port], stateful: dict[str, bool], explicit: dict[str, int]
) -> dict[str, int]:
    """Port id -> conntrack zone, for the stateful filtered ports (in device order).

    Ports of one network share a zone; ports without a network share one default zone,
    because on a shared bridge a flow between two of them passes netfilter only once.
    Explicit zones (by network id, then port id) win; the rest are numbered from 4097 in
    device order, skipping numbers taken explicitly. Agents should pin zones (HostState.
    conntrack_zones) so that a new port does not renumber live connections.
    """
    taken = set(explicit.values())
    by_network: dict[str, int] = {}
    zones: dict[str, int] = {}
    next_zone = FIRST_AUTOMATIC_ZONE
    for port in filtered:
        if not stateful[port.id]:
            continue
        network = port.network_id or ""
        if port.network_id in explicit:
            zones[port.id] = explicit[port.network_id]
        elif port.id in explicit:
            zones[port.id] = explicit[port.id]
        else:
            if network not in by_network:
                while next_zone in taken:
                    next_zone += 1
                by_network[network] = next_zone
                taken.add(next_zone)
            zones[port.id] = by_network[network]
    return zones


def _zone_args(zone: int) -> tuple[str, ...]:
    return ("--zone", str(zone))


def raw_chains(prefix: str, filtered: Sequence[Port], zones: dict[str, int]) -> tuple[Chain, Chain]:
    """(PREROUTING with our jump, <prefix>-PREROUTING)."""
    chain = names.prerouting_chain(prefix)
    rules: list[Rule] = []
    for port in filtered:
        match = new_match(physdev_in=port.device)
        if port.id in zones:
            origin = new_origin(ORIGIN_CONNTRACK_ZONE, port.id, EGRESS)
            rules.append(new_rule(chain, match, CT, origin, _zone_args(zones[port.id])))
        else:
            origin = new_origin(ORIGIN_NOTRACK, port.id, EGRESS)
            rules.append(new_rule(chain, match, CT, origin, NOTRACK_ARGS))
    rules.extend(_towards_vm_rules(chain, filtered, zones))
    jump = new_rule("PREROUTING", NO_MATCH, chain, new_origin(ORIGIN_JUMP))
    return Chain("PREROUTING", (jump,), owned=False), Chain(chain, tuple(rules))


def _towards_vm_rules(chain: str, filtered: Sequence[Port], zones: dict[str, int]) -> list[Rule]:
    # bridge -> (zone or None for notrack, the ports on it)
    bridges: dict[str, tuple[int | None, list[str]]] = {}
    unbridged_zones: set[int] = set()
    for port in filtered:
        zone = zones.get(port.id)
        if port.bridge is None:
            if zone is not None:
                unbridged_zones.add(zone)
            continue
        seen_zone, ports = bridges.setdefault(port.bridge, (zone, []))
        if seen_zone is None and zone is not None:
            bridges[port.bridge] = (zone, ports)  # a stateful port makes the bridge tracked
        elif zone is not None and seen_zone != zone:
            raise port_error(
                port.id,
                "bridge",
                f"bridge {port.bridge} would carry conntrack zones {seen_zone} "
                f"(port {ports[0]}) and {zone}",
            )
        ports.append(port.id)
    rules = []
    for bridge in sorted(bridges):
        zone, ports = bridges[bridge]
        # A bridge of its own (Neutron's qbr per port) names its port in the origin.
        port_id = ports[0] if len(ports) == 1 else None
        match = new_match(in_interface=bridge)
        if zone is None:
            origin = new_origin(ORIGIN_NOTRACK, port_id, INGRESS)
            rules.append(new_rule(chain, match, CT, origin, NOTRACK_ARGS))
        else:
            origin = new_origin(ORIGIN_CONNTRACK_ZONE, port_id, INGRESS)
            rules.append(new_rule(chain, match, CT, origin, _zone_args(zone)))
    if len(unbridged_zones) == 1:
        # One network and no bridge names: anything else arriving on a bridge is towards it.
        (zone,) = unbridged_zones
        origin = new_origin(ORIGIN_CONNTRACK_ZONE, None, INGRESS)
        rules.append(new_rule(chain, new_match(physdev_is_in=True), CT, origin, _zone_args(zone)))
    return rules
