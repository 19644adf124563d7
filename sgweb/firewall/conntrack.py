"""The raw table: a conntrack zone per port (Neutron's hybrid driver), notrack for stateless ports.

Zones keep two networks with the same addresses from sharing connection state. Each port has its
own zone, and, as in Neutron's hybrid driver, the zone is set on both of the port's devices: its
tap (traffic from the VM) and its qvb veth (traffic towards the VM, entering the port's own qbr
bridge from the integration side). No bridge name is needed, so every port of every network on a
host is zoned, whatever the number of networks.

A packet gets the zone of the first CT rule it meets, so the per-tap rules come first. Ports that
name a `bridge` shared with other ports (the Linux-bridge layout) share one zone, set on that
bridge: on a shared bridge a flow between two of them passes netfilter only once.
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
    Match,
    Rule,
)
from sgweb.firewall.model import EGRESS, INGRESS, Port

FIRST_AUTOMATIC_ZONE = 4097
NOTRACK_ARGS = ("--notrack",)


def assign_zones(
    filtered: Sequence[Port], stateful: dict[str, bool], explicit: dict[str, int]
) -> dict[str, int]:
    """Port id -> conntrack zone, for the stateful filtered ports (in device order).

    A port's own `conntrack_zone` wins (the control plane stores one per port), then an
    explicit zone by port id, then by network id; ports sharing a bridge take the zone of the
    first of them; the rest are numbered from 4097 in device order, skipping numbers taken.
    """
    taken = set(explicit.values())
    taken.update(port.conntrack_zone for port in filtered if port.conntrack_zone is not None)
    by_bridge: dict[str, int] = {}
    zones: dict[str, int] = {}
    next_zone = FIRST_AUTOMATIC_ZONE
    for port in filtered:
        if not stateful[port.id]:
            continue
        zone = _given_zone(port, explicit)
        if zone is None and port.bridge is not None:
            zone = by_bridge.get(port.bridge)
        if zone is None:
            while next_zone in taken:
                next_zone += 1
            zone = next_zone
            taken.add(zone)
        if port.bridge is not None:
            by_bridge.setdefault(port.bridge, zone)
        zones[port.id] = zone
    return zones


def _given_zone(port: Port, explicit: dict[str, int]) -> int | None:
    if port.conntrack_zone is not None:
        return port.conntrack_zone
    if port.id in explicit:
        return explicit[port.id]
    if port.network_id is not None:
        return explicit.get(port.network_id)
    return None


def _zone_args(zone: int) -> tuple[str, ...]:
    return ("--zone", str(zone))


def raw_chains(prefix: str, filtered: Sequence[Port], zones: dict[str, int]) -> tuple[Chain, Chain]:
    """(PREROUTING with our jump, <prefix>-PREROUTING)."""
    chain = names.prerouting_chain(prefix)
    rules: list[Rule] = []
    for port in filtered:
        rules.append(_ct_rule(chain, new_match(physdev_in=port.device), port.id, EGRESS, zones))
    rules.extend(_towards_vm_rules(chain, filtered, zones))
    jump = new_rule("PREROUTING", NO_MATCH, chain, new_origin(ORIGIN_JUMP))
    return Chain("PREROUTING", (jump,), owned=False), Chain(chain, tuple(rules))


def _ct_rule(
    chain: str, match: Match, port_id: str | None, direction: str, zones: dict[str, int]
) -> Rule:
    zone = zones.get(port_id) if port_id is not None else None
    if zone is None:
        origin = new_origin(ORIGIN_NOTRACK, port_id, direction)
        return new_rule(chain, match, CT, origin, NOTRACK_ARGS)
    origin = new_origin(ORIGIN_CONNTRACK_ZONE, port_id, direction)
    return new_rule(chain, match, CT, origin, _zone_args(zone))


def _towards_vm_rules(chain: str, filtered: Sequence[Port], zones: dict[str, int]) -> list[Rule]:
    """Traffic towards the VMs: by the port's qvb veth, or by its named (shared) bridge."""
    # bridge -> (zone or None for notrack, the ports on it)
    bridges: dict[str, tuple[int | None, list[str]]] = {}
    rules = []
    for port in filtered:
        zone = zones.get(port.id)
        if port.bridge is None:
            veth = new_match(physdev_in=names.veth_name(port.id))
            rules.append(_ct_rule(chain, veth, port.id, INGRESS, zones))
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
    return rules
