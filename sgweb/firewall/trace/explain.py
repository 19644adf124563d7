"""Say why a traced packet was allowed or dropped, in security-group terms.

The tracer knows chains and positions; the admin knows ports, groups and rules. Every compiled
rule carries an `Origin`, so the rules a packet matched tell which port's ingress or egress
decided and why; the `HostState` gives the names and rule details to say it with. A default drop
also names the nearest rule: the port's rule of that direction and family that differs from the
packet in the fewest aspects (protocol, port or ICMP type, remote), so the admin sees what to
change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TypedDict

from sgweb.firewall import names
from sgweb.firewall.ir import (
    ACCEPT,
    DROP,
    ORIGIN_ACCEPT_UNFILTERED,
    ORIGIN_ANTI_SPOOF,
    ORIGIN_DHCP,
    ORIGIN_DHCP_SPOOF,
    ORIGIN_ESTABLISHED,
    ORIGIN_FALLBACK,
    ORIGIN_ICMPV6,
    ORIGIN_INVALID,
    ORIGIN_PORT_SECURITY_OFF,
    ORIGIN_RA_SPOOF,
    ORIGIN_SG_RULE,
    RETURN,
    Origin,
)
from sgweb.firewall.model import EGRESS, INGRESS, HostState, Port, SecurityGroupRule
from sgweb.firewall.trace.tracer import (
    CT_ESTABLISHED,
    CT_RELATED,
    HOOK_INPUT,
    HOOK_OUTPUT,
    STEP_RULE,
    Trace,
)
from sgweb.firewall.trace.words import (
    ASPECT_ICMP_TYPE,
    ASPECT_PORT,
    ASPECT_PROTOCOL,
    ASPECT_REMOTE,
    ICMPV6_NAMES,
    PLUMBING_ORIGINS,
    describe_packet,
    describe_rule,
    in_network,
    nearest_rule,
    protocol_label,
    rule_differences,
)

# Reason codes: stable strings for the API and the browser.
REASON_RULE = "rule"
REASON_ESTABLISHED = "established"
REASON_DHCP = "dhcp"
REASON_ICMPV6 = "icmpv6"
REASON_PORT_SECURITY_OFF = "port-security-off"
REASON_NO_PORT = "no-port"
REASON_HOST_INPUT = "host-input"
REASON_HOST_OUTPUT = "host-output"
REASON_DEFAULT_DROP = "default-drop"
REASON_SPOOF_IP = "anti-spoofing-ip"
REASON_SPOOF_MAC = "anti-spoofing-mac"
REASON_DHCP_SERVER = "dhcp-server"
REASON_RA = "router-advertisement"
REASON_INVALID = "invalid"
REASON_POLICY = "policy"


@dataclass(frozen=True, slots=True)
class Decision:
    """What one port's ingress or egress chain did with the packet."""

    port_id: str
    port_name: str
    direction: str | None
    outcome: str  # ACCEPT (the chain let it through) | DROP
    reason: str
    text: str
    rule_id: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    nearest_rule_id: str | None = None
    differs: tuple[str, ...] = ()


class _DecisionBase(TypedDict):
    """The fields every Decision of one port and direction shares."""

    port_id: str
    port_name: str
    direction: str | None


@dataclass(frozen=True, slots=True)
class Explanation:
    verdict: str
    reason: str
    text: str
    port_id: str | None = None
    port_name: str | None = None
    direction: str | None = None
    group_ids: tuple[str, ...] = ()
    group_names: tuple[str, ...] = ()
    rule_id: str | None = None
    nearest_rule_id: str | None = None
    differs: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["group_ids"] = list(self.group_ids)
        data["group_names"] = list(self.group_names)
        data["differs"] = list(self.differs)
        data["decisions"] = [
            {**asdict(decision), "differs": list(decision.differs)} for decision in self.decisions
        ]
        return data


# --- turning matched rules into decisions -------------------------------------------------------


def _find_port(state: HostState | None, port_id: str) -> Port | None:
    if state is None:
        return None
    for port in state.ports:
        if port.id == port_id:
            return port
    return None


def _port_name(state: HostState | None, port_id: str) -> str:
    port = _find_port(state, port_id)
    return port.name if port is not None and port.name else port_id


def _group_name(state: HostState | None, group_id: str) -> str:
    group = state.group(group_id) if state is not None else None
    return group.name if group is not None and group.name else group_id


def _find_rule(
    state: HostState | None, origin: Origin
) -> tuple[SecurityGroupRule | None, str | None]:
    if state is None or origin.rule_id is None:
        return None, origin.group_id
    groups = state.security_groups
    if origin.group_id is not None:
        groups = tuple(g for g in groups if g.id == origin.group_id) or groups
    for group in groups:
        for rule in group.rules:
            if rule.id == origin.rule_id:
                return rule, group.id
    return None, origin.group_id


def _decision_exits(trace: Trace) -> list[tuple[Origin, str]]:
    """The last decisive hit per (port, direction), in the order the ports were reached."""
    exits: dict[tuple[str, str | None], tuple[Origin, str]] = {}
    for hit in trace.matched:
        origin = hit.rule.origin
        if origin.port_id is None or origin.kind in PLUMBING_ORIGINS:
            continue
        if origin.kind == ORIGIN_ANTI_SPOOF and hit.rule.target == RETURN:
            continue  # passing anti-spoofing is a step on the way, not the egress decision
        key = (origin.port_id, origin.direction)
        exits.pop(key, None)  # re-insert so order follows the last hit
        exits[key] = (origin, hit.rule.target)
    return list(exits.values())


def _spoof_allowed(
    trace: Trace, origin: Origin, state: HostState | None
) -> list[tuple[str | None, str | None]]:
    """(source CIDR or None for "any address", MAC or None for "any MAC") of each RETURN rule
    the s-chain tried: exactly what the kernel compared the packet with (the port's own
    addresses when the trace shows none)."""
    allowed: list[tuple[str | None, str | None]] = []
    for step in trace.path:
        rule = step.rule
        if (
            step.event == STEP_RULE
            and rule is not None
            and rule.origin.kind == ORIGIN_ANTI_SPOOF
            and rule.origin.port_id == origin.port_id
            and rule.target == RETURN
        ):
            allowed.append((rule.match.source, rule.match.mac_source))
    port = _find_port(state, origin.port_id or "")
    if not allowed and port is not None:
        allowed = [(ip, port.mac_address) for ip in port.fixed_ips]
    return allowed


def _anti_spoof_decision(
    trace: Trace, origin: Origin, state: HostState | None, where: str, base: _DecisionBase
) -> Decision:
    packet = trace.packet
    allowed = _spoof_allowed(trace, origin, state)
    mac = (packet.src_mac or "").lower()
    same_ip = [m for cidr, m in allowed if cidr is None or in_network(packet.src, cidr)]
    if same_ip and packet.src_mac is None:
        text = f"dropped at {where} by anti-spoofing: the packet's source MAC is not given"
        return Decision(**base, outcome=DROP, reason=REASON_SPOOF_MAC, text=text)
    if same_ip and all(m is not None and m.lower() != mac for m in same_ip):
        expected = ", ".join(sorted({(m or "").lower() for m in same_ip}))
        text = (
            f"dropped at {where} by anti-spoofing: source MAC {mac} is not the MAC allowed for "
            f"{packet.src} ({expected})"
        )
        return Decision(**base, outcome=DROP, reason=REASON_SPOOF_MAC, text=text)
    addresses = ", ".join(
        cidr.removesuffix("/32").removesuffix("/128") for cidr, _ in allowed if cidr is not None
    )
    text = (
        f"dropped at {where} by anti-spoofing: source {packet.src} is not one of the port's "
        f"addresses ({addresses or 'none'})"
    )
    return Decision(**base, outcome=DROP, reason=REASON_SPOOF_IP, text=text)


def _all_stateless(port: Port, state: HostState) -> bool:
    groups = [state.group(gid) for gid in port.security_groups]
    return bool(groups) and all(group is not None and not group.stateful for group in groups)


def _default_drop_decision(
    trace: Trace, origin: Origin, state: HostState | None, where: str, base: _DecisionBase
) -> Decision:
    packet = trace.packet
    direction = origin.direction or INGRESS
    port = _find_port(state, origin.port_id or "")
    wanted = describe_packet(packet, direction)
    if port is None or state is None:
        text = f"dropped at {where} by the default drop: no rule allows {wanted}"
        return Decision(**base, outcome=DROP, reason=REASON_DEFAULT_DROP, text=text)
    names = [_group_name(state, gid) for gid in port.security_groups]
    if not names:
        text = (
            f"dropped at {where} by the default drop: the port has no security group, so only "
            f"DHCP, established traffic and its own addresses pass; nothing allows {wanted}"
        )
        return Decision(**base, outcome=DROP, reason=REASON_DEFAULT_DROP, text=text)
    noun = "group" if len(names) == 1 else "groups"
    text = f"dropped at {where} by the default drop: no rule of {noun} {', '.join(names)} "
    text += f"allows {wanted}"
    if packet.ct_state in (CT_ESTABLISHED, CT_RELATED) and (
        trace.notrack or _all_stateless(port, state)
    ):
        text += (
            " (its groups are stateless, so connection tracking lets no reply through; "
            "replies need a rule of their own)"
        )
    found = nearest_rule(port, direction, packet, state)
    if found is None:
        family = "IPv6" if packet.family == 6 else "IPv4"
        pronoun = "it has" if len(names) == 1 else "they have"
        text += f"; {pronoun} no {direction} {family} rule at all"
        return Decision(**base, outcome=DROP, reason=REASON_DEFAULT_DROP, text=text)
    rule, group_id, differs = found
    text += f"; nearest rule {rule.id} of group {_group_name(state, group_id)} allows "
    text += describe_rule(rule, state)
    if differs:
        text += f" (differs in {', '.join(differs)})"
    else:
        text += " (it covers the packet, but its compiled rule did not match: see the path)"
    return Decision(
        **base,
        outcome=DROP,
        reason=REASON_DEFAULT_DROP,
        text=text,
        nearest_rule_id=rule.id,
        differs=differs,
    )


def _rule_decision(
    origin: Origin, state: HostState | None, where: str, base: _DecisionBase
) -> Decision:
    """Allowed by a security group rule (through a remote group's member, maybe)."""
    rule, group_id = _find_rule(state, origin)
    group_name = _group_name(state, group_id) if group_id else None
    detail = f" ({describe_rule(rule, state)})" if rule is not None else ""
    member = f" via member {origin.member}" if origin.member else ""
    of_group = f" of group {group_name}" if group_name else ""
    text = f"allowed at {where} by rule {origin.rule_id}{detail}{of_group}{member}"
    return Decision(
        **base,
        outcome=ACCEPT,
        reason=REASON_RULE,
        text=text,
        rule_id=origin.rule_id,
        group_id=group_id,
        group_name=group_name,
    )


def _always_allowed(trace: Trace, origin: Origin, where: str, base: _DecisionBase) -> Decision:
    """What the port's chains let through before any rule: DHCP, the ICMPv6 it needs."""
    packet, direction = trace.packet, origin.direction
    if origin.kind == ORIGIN_DHCP:
        if direction == INGRESS:
            text = f"allowed at {where}: a DHCP reply from the subnet's DHCP server {packet.src}"
        else:
            text = f"allowed at {where}: a DHCP request from the VM"
        return Decision(**base, outcome=ACCEPT, reason=REASON_DHCP, text=text)
    name = ICMPV6_NAMES.get(packet.effective_icmp_type or -1, "")
    what = f"ICMPv6 {name}".rstrip()
    if direction == EGRESS:
        text = f"allowed at {where}: {what} from the VM is always let out"
    else:
        text = f"allowed at {where}: {what} is always let in"
    return Decision(**base, outcome=ACCEPT, reason=REASON_ICMPV6, text=text)


def _decision(trace: Trace, origin: Origin, target: str, state: HostState | None) -> Decision:
    port_id = origin.port_id or ""
    port_name = _port_name(state, port_id)
    direction = origin.direction
    where = f"port {port_name} {direction}" if direction else f"port {port_name}"
    base: _DecisionBase = {"port_id": port_id, "port_name": port_name, "direction": direction}
    kind = origin.kind
    if kind == ORIGIN_SG_RULE:
        return _rule_decision(origin, state, where, base)
    if kind == ORIGIN_ESTABLISHED:
        text = f"allowed at {where} as part of an established connection"
        return Decision(**base, outcome=ACCEPT, reason=REASON_ESTABLISHED, text=text)
    if kind in (ORIGIN_DHCP, ORIGIN_ICMPV6) and target != DROP:
        return _always_allowed(trace, origin, where, base)
    if kind == ORIGIN_PORT_SECURITY_OFF:
        text = f"let through: port security is disabled on port {port_name}"
        return Decision(**base, outcome=ACCEPT, reason=REASON_PORT_SECURITY_OFF, text=text)
    if kind == ORIGIN_INVALID:
        text = f"dropped at {where} as INVALID by conntrack"
        if trace.ct_reason:
            text += f" ({trace.ct_reason}, before any security group rule)"
        return Decision(**base, outcome=DROP, reason=REASON_INVALID, text=text)
    if kind == ORIGIN_DHCP_SPOOF or (kind == ORIGIN_DHCP and target == DROP):
        text = f"dropped at {where}: the VM may not act as a DHCP server"
        return Decision(**base, outcome=DROP, reason=REASON_DHCP_SERVER, text=text)
    if kind == ORIGIN_RA_SPOOF:
        text = f"dropped at {where}: the VM may not send IPv6 router advertisements"
        return Decision(**base, outcome=DROP, reason=REASON_RA, text=text)
    if kind == ORIGIN_ANTI_SPOOF:
        return _anti_spoof_decision(trace, origin, state, where, base)
    if kind == ORIGIN_FALLBACK:
        return _default_drop_decision(trace, origin, state, where, base)
    outcome = DROP if target == DROP else ACCEPT
    verb = "dropped" if outcome == DROP else "let through"
    return Decision(**base, outcome=outcome, reason=kind, text=f"{verb} at {where} ({kind})")


def _port_of_device(state: HostState | None, device: str | None) -> Port | None:
    if state is None or device is None:
        return None
    for port in state.ports:
        if (port.device or names.device_name(port.id)) == device:
            return port
    return None


def _unfiltered(trace: Trace, state: HostState | None) -> Explanation:
    packet = trace.packet
    deciding = trace.deciding
    chain = deciding.chain if deciding is not None else packet.hook
    verb = "allowed" if trace.verdict == ACCEPT else "dropped"
    how = f"the {chain} chain's policy {trace.verdict}"
    if deciding is not None and deciding.rule is not None:
        if deciding.rule.origin.kind == ORIGIN_ACCEPT_UNFILTERED:
            how = "sg-chain's final ACCEPT"
        else:
            how = f"{deciding.chain} rule {deciding.position}"
    source_port = _port_of_device(state, packet.physdev_in)
    if packet.hook == HOOK_INPUT and source_port is not None:
        name = source_port.name or source_port.id
        text = (
            f"not filtered by security groups: traffic from port {name} to the host itself "
            f"skips the port's egress chain (Neutron's INPUT jump needs --physdev-is-bridged, "
            f"which never matches a packet delivered to the host); {verb} by {how}"
        )
        return Explanation(
            verdict=trace.verdict,
            reason=REASON_HOST_INPUT,
            text=text,
            port_id=source_port.id,
            port_name=name,
            direction=EGRESS,
        )
    if packet.hook == HOOK_OUTPUT:
        text = (
            "not filtered by security groups: packets the host itself sends carry no bridge "
            f"port at the IP hooks, so no port's chain sees them; {verb} by {how}"
        )
        return Explanation(verdict=trace.verdict, reason=REASON_HOST_OUTPUT, text=text)
    if trace.verdict == DROP:
        text = f"dropped by {how}; no port on this host filtered it"
        return Explanation(verdict=DROP, reason=REASON_POLICY, text=text)
    text = f"not filtered: no port on this host; {verb} by {how}"
    return Explanation(verdict=trace.verdict, reason=REASON_NO_PORT, text=text)


def explain(trace: Trace, state: HostState | None = None) -> Explanation:
    """The explanation of one traversal of one host."""
    decisions = [_decision(trace, o, target, state) for o, target in _decision_exits(trace)]
    if not decisions:
        return _unfiltered(trace, state)
    # On a shared bridge one traversal passes the source port's egress and the destination's
    # ingress in sg-chain order, which is port order; say them in the packet's order instead.
    decisions.sort(key=lambda d: 0 if d.direction == EGRESS else 1)
    drops = [d for d in decisions if d.outcome == DROP]
    primary = drops[-1] if trace.verdict == DROP and drops else decisions[-1]
    text = "; ".join(d.text for d in decisions)
    if trace.verdict == DROP and primary.outcome != DROP:
        text += f"; then dropped by {trace.deciding.chain if trace.deciding else 'the host'}"
    port = _find_port(state, primary.port_id)
    group_ids: tuple[str, ...] = port.security_groups if port is not None else ()
    if primary.group_id and primary.group_id not in group_ids:
        group_ids = (primary.group_id, *group_ids)
    return Explanation(
        verdict=trace.verdict,
        reason=primary.reason,
        text=text,
        port_id=primary.port_id,
        port_name=primary.port_name,
        direction=primary.direction,
        group_ids=group_ids,
        group_names=tuple(_group_name(state, gid) for gid in group_ids),
        rule_id=primary.rule_id,
        nearest_rule_id=primary.nearest_rule_id,
        differs=primary.differs,
        decisions=tuple(decisions),
    )


def sentence(explanations: Sequence[Explanation]) -> str:
    """One sentence for several traversals (a flow over hosts), in order."""
    return "; ".join(e.text for e in explanations)


# The words live in trace.words; callers of explain get them here too.
__all__ = [
    "ASPECT_ICMP_TYPE",
    "ASPECT_PORT",
    "ASPECT_PROTOCOL",
    "ASPECT_REMOTE",
    "REASON_DEFAULT_DROP",
    "REASON_DHCP",
    "REASON_DHCP_SERVER",
    "REASON_ESTABLISHED",
    "REASON_HOST_INPUT",
    "REASON_HOST_OUTPUT",
    "REASON_INVALID",
    "REASON_NO_PORT",
    "REASON_POLICY",
    "REASON_PORT_SECURITY_OFF",
    "REASON_RA",
    "REASON_RULE",
    "REASON_SPOOF_IP",
    "REASON_SPOOF_MAC",
    "Decision",
    "Explanation",
    "describe_packet",
    "describe_rule",
    "explain",
    "nearest_rule",
    "protocol_label",
    "rule_differences",
    "sentence",
]
