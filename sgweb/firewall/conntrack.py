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
    lazy_chain,
)
from sgweb.firewall.model import EGRESS, INGRESS, Port
from sgweb.firewall.render import match_text

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


def raw_chains(prefix: str, filtered: Sequence[Port], zones: dict[str, int]) -> tuple[Chain, Chain]:
    """(PREROUTING with our jump, <prefix>-PREROUTING).

    The second holds two rules per port (1,000 for 500 ports) that differ only in a device
    name and a zone, so it is a LazyChain like the port chains: its text is a rendered match
    with a stand-in for the device, filled in per rule; its Rule objects are made only when
    someone reads them (tracer, counters). The bridges are checked here, so a conflict is
    refused at compile time, not when the chain is first read.
    """
    chain = names.prerouting_chain(prefix)
    jump = new_rule("PREROUTING", NO_MATCH, chain, new_origin(ORIGIN_JUMP))
    builtin = Chain("PREROUTING", (jump,), owned=False)
    if not filtered:
        return builtin, Chain(chain, ())
    return builtin, lazy_chain(chain, _ZoneRules(chain, _zone_plan(filtered, zones)), 0)


# One rule of <prefix>-PREROUTING: (match kind, interface, port id for the origin or None,
# direction, zone or None for notrack).
_Planned = tuple[str, str, "str | None", str, "int | None"]
_PHYSDEV_IN, _IN_INTERFACE = "physdev-in", "in-interface"


def _zone_plan(filtered: Sequence[Port], zones: dict[str, int]) -> list[_Planned]:
    """The rules in order: each port's tap (from the VM), then traffic towards the VMs by the
    port's qvb veth, or by its named (shared) bridge."""
    plan: list[_Planned] = [
        (_PHYSDEV_IN, port.device or "", port.id, EGRESS, zones.get(port.id)) for port in filtered
    ]
    # bridge -> (zone or None for notrack, the ports on it)
    bridges: dict[str, tuple[int | None, list[str]]] = {}
    for port in filtered:
        zone = zones.get(port.id)
        if port.bridge is None:
            plan.append((_PHYSDEV_IN, names.veth_name(port.id), port.id, INGRESS, zone))
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
        plan.append((_IN_INTERFACE, bridge, port_id, INGRESS, zone))
    return plan


def _match(kind: str, interface: str) -> Match:
    if kind == _PHYSDEV_IN:
        return new_match(physdev_in=interface)
    return new_match(in_interface=interface)


def _target_args(zone: int | None) -> tuple[str, ...]:
    return NOTRACK_ARGS if zone is None else ("--zone", str(zone))


_INTERFACE = "\x00n\x00"  # stand-in for an interface name; no rendered rule contains a NUL
_MATCH_TAILS: dict[str, tuple[str, str]] = {}


def _match_tail(kind: str) -> tuple[str, str]:
    """The rendered match of a kind, split around the interface name."""
    tail = _MATCH_TAILS.get(kind)
    if tail is None:
        before, _, after = match_text(_match(kind, _INTERFACE)).partition(_INTERFACE)
        tail = _MATCH_TAILS[kind] = (before, after)
    return tail


class _ZoneRules:
    """The ChainSource of <prefix>-PREROUTING: text from the plan, rules on demand."""

    __slots__ = ("chain", "plan", "rules", "text")

    def __init__(self, chain: str, plan: list[_Planned]) -> None:
        self.chain = chain
        self.plan = plan
        self.rules: tuple[Rule, ...] | None = None
        self.text: str | None = None  # both families render this very chain

    def chain_rules(self, index: int) -> tuple[Rule, ...]:
        if self.rules is None:
            self.rules = tuple(
                _ct_rule(self.chain, _match(kind, interface), port_id, direction, zone)
                for kind, interface, port_id, direction, zone in self.plan
            )
        return self.rules

    def chain_text(self, index: int) -> str:
        """`render.chain_text(self.chain_rules(0))`, without making the rules."""
        if self.text is None:
            self.text = self._text()
        return self.text

    def _text(self) -> str:
        head = "-A " + self.chain
        target = " -j " + CT
        tails = {kind: _match_tail(kind) for kind in (_PHYSDEV_IN, _IN_INTERFACE)}
        lines = []
        for kind, interface, _port_id, _direction, zone in self.plan:
            if not interface:  # not after validation; rendered the long way to stay exact
                match = match_text(_match(kind, interface))
            else:
                before, after = tails[kind]
                match = before + interface + after
            # The target arguments as render joins them: " --notrack" or " --zone N".
            args = " --notrack" if zone is None else " --zone " + str(zone)
            lines.append(head + match + target + args)
        return "\n".join(lines)


def _ct_rule(
    chain: str, match: Match, port_id: str | None, direction: str, zone: int | None
) -> Rule:
    kind = ORIGIN_NOTRACK if zone is None else ORIGIN_CONNTRACK_ZONE
    origin = new_origin(kind, port_id, direction)
    return new_rule(chain, match, CT, origin, _target_args(zone))
