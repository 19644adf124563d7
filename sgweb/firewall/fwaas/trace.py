"""Which firewall group, policy and rule decides a packet routed through a router (issue 16).

The walk follows the compiled layout exactly (`compiler.forward_jumps`, then a policy chain's
INVALID / ESTABLISHED preamble and its enabled rules in order), so its verdict is the kernel's;
tests/kernel/test_fwaas_kernel.py holds the two side by side. One consequence of that layout,
kept on purpose because the kernel does it: the first policy chain that matches a rule decides
for the whole router, so when both interfaces have firewall groups the group whose jumps come
first (id order) accepts or drops and the other is not consulted; the result says so.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, replace
from typing import Any

from sgweb.firewall.fwaas.compiler import (
    DEFAULT_CHAIN,
    DIRECTIONS,
    INGRESS,
    Jump,
    RuleOrigin,
    forward_jumps,
    groups_on_router,
    policy_of,
)
from sgweb.firewall.fwaas.model import ALLOW, DENY, FirewallRule, RouterInterface, RouterState
from sgweb.firewall.fwaas.validate import parse_network, parse_port_range, validate_router_state
from sgweb.firewall.trace.packet import CT_ESTABLISHED, CT_INVALID, CT_RELATED, Packet, TraceError

ACCEPT = "accept"
DROP = "drop"
REJECTED = "reject"
RETURN = "return"  # the policy chain matched nothing; FORWARD goes on
VERDICT_OF_ACTION = {ALLOW: ACCEPT, DENY: DROP, "reject": REJECTED}

# Why a step ended as it did.
BY_RULE = "rule"
BY_INVALID = "invalid"
BY_ESTABLISHED = "established"
BY_DEFAULT = "default"  # fwaas-default-policy: no rule of the policy matched
BY_ADMIN_DOWN = "admin-down"  # the group is down: only the default drop is installed
NO_MATCH = "no-match"

_PROTOCOL = {("tcp", 4): 6, ("tcp", 6): 6, ("udp", 4): 17, ("udp", 6): 17}
_ICMP = {4: 1, 6: 58}


@dataclass(frozen=True, slots=True)
class RouterStep:
    """One jump of neutron-l3-agent-FORWARD the packet took, and how its chain ended."""

    group_id: str
    group_name: str
    direction: str  # "ingress" | "egress" (Neutron's: ingress is toward the interface's network)
    port_id: str
    device: str
    network_name: str
    chain: str
    verdict: str  # ACCEPT | DROP | REJECTED | RETURN
    reason: str  # BY_RULE | BY_INVALID | BY_ESTABLISHED | BY_DEFAULT | BY_ADMIN_DOWN | NO_MATCH
    policy_id: str | None = None
    policy_name: str | None = None
    rule: RuleOrigin | None = None


@dataclass(frozen=True, slots=True)
class RouterTrace:
    router_id: str
    router_name: str
    family: int
    in_port_id: str
    in_device: str
    out_port_id: str
    out_device: str
    verdict: str  # ACCEPT | DROP | REJECTED
    steps: tuple[RouterStep, ...]
    deciding: RouterStep | None  # None: no firewall group decided; the router forwards
    not_consulted: tuple[str, ...]  # names of groups on the path the kernel never reached
    words: str

    @property
    def layer(self) -> str:
        return "router"

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON for the trace page and the API (steps in the order the kernel took)."""
        return asdict(self)


def interface_for(state: RouterState, address: str) -> RouterInterface | None:
    """The interface whose subnet holds `address` (longest prefix), as the router routes."""
    ip = ipaddress.ip_address(address)
    best: tuple[int, RouterInterface] | None = None
    for interface in state.router.interfaces:
        network = ipaddress.ip_network(interface.cidr, strict=False)
        fits = network.version == ip.version and ip in network
        if fits and (best is None or network.prefixlen > best[0]):
            best = (network.prefixlen, interface)
    return best[1] if best else None


def trace_router(
    state: RouterState,
    packet: Packet,
    *,
    in_port_id: str | None = None,
    out_port_id: str | None = None,
) -> RouterTrace:
    """Walk `packet` entering the router by one interface and leaving by another. Interfaces
    not given are found by routing: the source's subnet, the destination's subnet."""
    validate_router_state(state)
    family = packet.family or 4
    inbound = _interface(state, in_port_id, packet.src, "source")
    outbound = _interface(state, out_port_id, packet.dst, "destination")
    steps: list[RouterStep] = []
    deciding: RouterStep | None = None
    for jump in forward_jumps(state, family):
        if not _jump_matches(jump, inbound.device, outbound.device):
            continue
        step = _walk(jump, packet, family)
        steps.append(step)
        if step.verdict != RETURN:
            deciding = step
            break
    verdict = deciding.verdict if deciding else ACCEPT
    on_path = [
        group
        for group, interfaces in groups_on_router(state)
        if any(i.port_id in (inbound.port_id, outbound.port_id) for i in interfaces)
    ]
    reached = {step.group_id for step in steps}
    not_consulted = tuple(group.name or group.id for group in on_path if group.id not in reached)
    trace = RouterTrace(
        router_id=state.router.id,
        router_name=state.router.name or state.router.id,
        family=family,
        in_port_id=inbound.port_id,
        in_device=inbound.device,
        out_port_id=outbound.port_id,
        out_device=outbound.device,
        verdict=verdict,
        steps=tuple(steps),
        deciding=deciding,
        not_consulted=not_consulted,
        words="",
    )
    return _with_words(trace, inbound, outbound)


def _interface(
    state: RouterState, port_id: str | None, address: str | None, side: str
) -> RouterInterface:
    if port_id is not None:
        for interface in state.router.interfaces:
            if interface.port_id == port_id:
                return interface
        raise TraceError(f"port {port_id} is not an interface of router {state.router.id}")
    if address is None:
        raise TraceError(f"the packet has no {side} address to route by")
    found = interface_for(state, address)
    if found is None:
        raise TraceError(f"router {state.router.id} has no interface on the {side} {address}")
    return found


def _jump_matches(jump: Jump, in_device: str, out_device: str) -> bool:
    return jump.device == (in_device if jump.option == "-i" else out_device)


def _walk(jump: Jump, packet: Packet, family: int) -> RouterStep:
    group = jump.group
    policy = policy_of(group, jump.direction)
    base = {
        "group_id": group.id,
        "group_name": group.name or group.id,
        "direction": jump.direction,
        "port_id": jump.interface.port_id,
        "device": jump.device,
        "network_name": jump.interface.network_name or jump.interface.network_id,
        "chain": jump.target,
        "policy_id": policy.id if policy else None,
        "policy_name": (policy.name or policy.id) if policy else None,
    }
    if jump.default:
        reason = BY_DEFAULT if group.admin_state_up else BY_ADMIN_DOWN
        return RouterStep(**base, verdict=DROP, reason=reason)  # type: ignore[arg-type]
    if packet.ct_state == CT_INVALID:
        return RouterStep(**base, verdict=DROP, reason=BY_INVALID)  # type: ignore[arg-type]
    if packet.ct_state in (CT_ESTABLISHED, CT_RELATED):
        return RouterStep(**base, verdict=ACCEPT, reason=BY_ESTABLISHED)  # type: ignore[arg-type]
    if policy is not None:
        for position, rule in enumerate(policy.rules, start=1):
            if rule.enabled and rule.ip_version == family and rule_matches(rule, packet):
                origin = RuleOrigin(
                    group.id,
                    group.name,
                    policy.id,
                    policy.name,
                    jump.direction,
                    rule.id,
                    rule.name,
                    position,
                    rule.action,
                )
                verdict = VERDICT_OF_ACTION[rule.action]
                return RouterStep(**base, verdict=verdict, reason=BY_RULE, rule=origin)  # type: ignore[arg-type]
    return RouterStep(**base, verdict=RETURN, reason=NO_MATCH)  # type: ignore[arg-type]


def rule_matches(rule: FirewallRule, packet: Packet) -> bool:
    """Whether the kernel's rule for `rule` (see compiler.rule_spec) matches the packet."""
    number = packet.protocol_number
    if rule.protocol == "icmp":
        if number != _ICMP[rule.ip_version]:
            return False
    elif rule.protocol is not None and number != _PROTOCOL[(rule.protocol, rule.ip_version)]:
        return False
    for value, address in (
        (rule.source_ip_address, packet.src),
        (rule.destination_ip_address, packet.dst),
    ):
        if value is not None:
            network = parse_network(value)
            if network.prefixlen and (
                address is None or ipaddress.ip_address(address) not in network
            ):
                return False
    for value, port in ((rule.source_port, packet.sport), (rule.destination_port, packet.dport)):
        if value is not None and rule.protocol in ("tcp", "udp"):
            low, high = parse_port_range(value)
            if port is None or not low <= port <= high:
                return False
    return True


# -- words ---------------------------------------------------------------------------------------

_VERB = {ACCEPT: "allowed", DROP: "dropped", REJECTED: "rejected"}


def _with_words(
    trace: RouterTrace, inbound: RouterInterface, outbound: RouterInterface
) -> RouterTrace:
    router = f"router {trace.router_name}"
    step = trace.deciding
    if step is None:
        if trace.steps:
            text = f"forwarded by {router}: no firewall decided"
        else:
            text = (
                f"forwarded by {router}: no firewall group on its interfaces to "
                f"{_net(inbound)} and {_net(outbound)}"
            )
        return _replace_words(trace, text)
    where = f"on {router} interface to {step.network_name}"
    verb = _VERB[step.verdict]
    if step.reason == BY_RULE and step.rule is not None:
        rule = step.rule
        text = (
            f"{verb} by firewall rule {rule.rule_name or rule.rule_id} (policy "
            f"{rule.policy_name or rule.policy_id}, position {rule.position}) {where}"
        )
    elif step.reason == BY_ESTABLISHED:
        text = (
            "allowed as part of an established connection by firewall group "
            f"{step.group_name} {where}"
        )
    elif step.reason == BY_INVALID:
        text = f"dropped as INVALID by firewall group {step.group_name} {where}"
    elif step.reason == BY_ADMIN_DOWN:
        text = f"dropped: firewall group {step.group_name} is administratively down {where}"
    elif step.policy_name is not None:
        text = (
            f"dropped by the default drop of firewall group {step.group_name}: no rule of "
            f"{step.direction} policy {step.policy_name} matched {where}"
        )
    else:
        text = (
            f"dropped by the default drop of firewall group {step.group_name}: it has no "
            f"{step.direction} policy {where}"
        )
    if trace.not_consulted:
        text += (
            f"; firewall group {', '.join(trace.not_consulted)} was not consulted (the first "
            "verdict in the router's FORWARD chain is final)"
        )
    return _replace_words(trace, text)


def _net(interface: RouterInterface) -> str:
    return interface.network_name or interface.network_id


def _replace_words(trace: RouterTrace, words: str) -> RouterTrace:
    return replace(trace, words=words)


__all__ = [
    "ACCEPT",
    "DEFAULT_CHAIN",
    "DIRECTIONS",
    "DROP",
    "INGRESS",
    "REJECTED",
    "RouterStep",
    "RouterTrace",
    "interface_for",
    "rule_matches",
    "trace_router",
]
