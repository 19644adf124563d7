"""A router's hop of a trace: the network node traces the router's namespace (issue 16).

A flow between two networks crosses the router that joins them. Its network node's agent gets
the proof's hop request like any other host of the flow; the hop names the router
(`router_id`), so the agent puts its TRACE rules in that router's namespace instead of its own,
and labels what the kernel did with the router's compiled firewall: the policy chain's rule at
that position is "firewall rule deny-ping (policy lab-edge, position 1)". A drop by the router's
firewall is then the kernel's own account, with the rule that did it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sgweb.firewall.fwaas.compiler import (
    ACCEPTED_CHAIN,
    DEFAULT_CHAIN,
    DROPPED_CHAIN,
    FORWARD_CHAIN,
    PREAMBLE,
    REJECTED_CHAIN,
    CompiledRouter,
)
from sgweb.kernel.ktrace import KernelPacket, KernelStep
from sgweb.wire import traces as protocol

Describe = Callable[[KernelPacket], list[dict[str, Any]]]
ACTION_CHAINS = (ACCEPTED_CHAIN, DROPPED_CHAIN, REJECTED_CHAIN)


@dataclass(frozen=True, slots=True)
class RouterHop:
    router_id: str
    name: str  # what the trace page calls it next to the node's packets
    netns: str
    describe: Describe


def own_router_hop(request: protocol.ProofRequest, host: str) -> dict[str, Any] | None:
    """This host's planned hop when it is a router's (it names `router_id`), else None."""
    for hop in request.hops:
        if hop.get("host") == host and hop.get("router_id"):
            return hop
    return None


def router_hop(request: protocol.ProofRequest, host: str, router_agent: Any) -> RouterHop | None:
    """Where and how this host traces its hop when the hop is a router's; None when it is not
    (the host's own namespace and port chains). Raises RuntimeError when this host should trace
    a router it does not run: the prover reports the hop as untraced, with this reason."""
    planned = own_router_hop(request, host)
    if planned is None:
        return None
    router_id = str(planned["router_id"])
    name = planned.get("router") or router_id
    applied = getattr(router_agent, "applied", None) if router_agent is not None else None
    compiled = applied.compiled.get(router_id) if applied is not None else None
    if compiled is None:
        raise RuntimeError(f"router {name} is not applied on network node {host}")
    netns = router_agent.netns(router_id)
    return RouterHop(router_id, str(name), netns, lambda packet: describe_packet(packet, compiled))


def _label(step: KernelStep, family: int, compiled: CompiledRouter) -> tuple[str, str | None]:
    """(words, firewall rule id) for one rule the packet matched in the router's filter table."""
    if step.table != "filter" or step.position is None:
        return "", None
    layout = compiled.family(family)
    index = step.position - 1
    origin = layout.origins.get((step.chain, index))
    if origin is not None:
        name = origin.rule_name or origin.rule_id
        policy = origin.policy_name or origin.policy_id
        return f"firewall rule {name} (policy {policy}, position {origin.position})", origin.rule_id
    if step.chain == FORWARD_CHAIN and 0 <= index < len(layout.jumps):
        jump = layout.jumps[index]
        group = jump.group.name or jump.group.id
        where = f"{jump.direction} on {jump.device}"
        if jump.default:
            return f"default drop of firewall group {group} ({where})", None
        return f"firewall group {group} ({where})", None
    if step.chain == DEFAULT_CHAIN:
        # The jump that led here names the group ("default drop of firewall group …"): this
        # line does not compete with it for the deciding label.
        return "the router's fwaas-default-policy chain", None
    specs = dict(layout.chains).get(step.chain) or ()
    if tuple(specs[: len(PREAMBLE)]) == PREAMBLE and index < len(PREAMBLE):
        if index == 0:
            return "INVALID: dropped by the router's firewall", None
        return "RELATED,ESTABLISHED: allowed by the router's firewall", None
    return "", None


def describe_step(step: KernelStep, family: int, compiled: CompiledRouter) -> dict[str, Any]:
    """One kernel step in the router's namespace, as the trace page shows a host's."""
    label, rule_id = "", None
    if step.event == "policy":
        label = f"{step.chain} policy {step.verdict}"
    else:
        label, rule_id = _label(step, family, compiled)
    if not label:
        label = step.rule_text or f"{step.chain} rule {step.position}"
    return {
        "table": step.table,
        "chain": step.chain,
        "position": step.position,
        "event": step.event,
        "verdict": step.verdict,
        "label": label,
        "rule_id": rule_id,
    }


def describe_packet(packet: KernelPacket, compiled: CompiledRouter) -> list[dict[str, Any]]:
    """A traversal of the router's namespace in words. The ACCEPT, DROP or REJECT itself is a
    line of a shared action chain (neutron-l3-agent-dropped: `-j DROP`); it is said in the words
    of what sent the packet there (the firewall rule, or a group's default drop), so the
    deciding line names the rule."""
    steps = [describe_step(s, packet.family, compiled) for s in packet.steps if not s.is_trace_rule]
    sender: dict[str, Any] | None = None
    for step in steps:
        if step["chain"] in ACTION_CHAINS and step["event"] == "rule" and sender is not None:
            step["label"], step["rule_id"] = sender["label"], sender["rule_id"]
        elif step["rule_id"] or "default drop" in step["label"]:
            sender = step
    return steps
