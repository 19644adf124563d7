"""One logged flow, explained by the packet tracer over its host's compiled desired state.

The agent says where a packet was logged (a port's ingress or egress chain) and what it was;
the tracer walks that one traversal through the host's prepared rules and `explain` says it in
security-group words ("dropped at port db-1 ingress by the default drop: no rule of group db
allows tcp/5432 from 198.51.100.7; nearest rule ... (differs in remote)"). The packet is the
connection's first (a SYN, conntrack NEW) unless the agent saw another conntrack state.

Pure: no Django, so the benchmark and the unit tests call it with a `HostTarget` of their own.
Explanations are cached per host target (a recompiled host starts afresh) and flow shape: the
source port of a TCP or UDP flow never changes what security groups decide, so the many
connections of one client to one service are explained once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sgweb.firewall import names
from sgweb.firewall.ir import ACCEPT, DROP
from sgweb.firewall.model import Port
from sgweb.firewall.trace.explain import explain
from sgweb.firewall.trace.flow import HostTarget
from sgweb.firewall.trace.packet import CT_NEW, CT_STATES, CT_UNTRACKED, Packet, TraceError
from sgweb.firewall.trace.tracer import trace
from sgweb.wire.packetlog import EVENT_DROP, Flow

CACHE_LIMIT = 20_000  # explanations kept per host


@dataclass(frozen=True, slots=True)
class FlowExplanation:
    text: str
    verdict: str = ""  # what the rules decide now: ACCEPT | DROP ("" when it could not be traced)
    reason: str = ""
    rule_id: str | None = None
    nearest_rule_id: str | None = None
    differs: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()

    def fields(self) -> dict[str, Any]:
        """The stored columns of a `DropFlow`."""
        return {
            "explanation": self.text,
            "verdict": self.verdict,
            "reason": self.reason,
            "rule_id": self.rule_id or "",
            "nearest_rule_id": self.nearest_rule_id or "",
            "differs": list(self.differs),
            "group_ids": list(self.group_ids),
        }


def shape(flow: Flow) -> tuple[Any, ...]:
    """What the explanation of a flow depends on (everything of its key but the source port)."""
    return (
        flow.port_id, flow.direction, flow.event, flow.ethertype, flow.protocol, flow.src,
        flow.dst, flow.dst_port, flow.icmp_type, flow.icmp_code, flow.ct_state,
    )  # fmt: skip


def _port(target: HostTarget, port_id: str) -> Port | None:
    for port in target.state.ports:
        if port.id == port_id:
            return port
    return None


def logged_packet(port: Port, flow: Flow) -> Packet:
    """The flow's first packet as the port's chain saw it (hybrid layout: tap <-> qbr <-> qvb)."""
    device = port.device or names.device_name(port.id)
    veth = names.veth_name(port.id)
    ingress = flow.direction == "ingress"
    # An UNTRACKED flow is traced as NEW: whether conntrack tracks it is the raw table's call
    # (the port's groups), which the tracer walks itself.
    ct_state = flow.ct_state if flow.ct_state in CT_STATES else CT_NEW
    if ct_state == CT_UNTRACKED:
        ct_state = CT_NEW
    return Packet(
        src=flow.src,
        dst=flow.dst,
        protocol=flow.protocol,
        sport=flow.src_port,
        dport=flow.dst_port,
        icmp_type=flow.icmp_type,
        icmp_code=flow.icmp_code,
        src_mac=None if ingress else port.mac_address,
        dst_mac=port.mac_address if ingress else None,
        physdev_in=veth if ingress else device,
        physdev_out=device if ingress else veth,
        in_interface=port.bridge or names.bridge_name(port.id),
        ct_state=ct_state,
        family=6 if flow.ethertype == "IPv6" else 4,
    )


def explain_flow(target: HostTarget, flow: Flow) -> FlowExplanation:
    """Why the port's rules let the flow's first packet through or dropped it."""
    port = _port(target, flow.port_id)
    if port is None:
        return FlowExplanation(
            f"port {flow.port_id} is not in host {target.name}'s desired state: it was moved or "
            "removed since the packet was logged"
        )
    try:
        result = trace(target.compiled, logged_packet(port, flow), index=target.index)
    except TraceError as exc:
        return FlowExplanation(f"could not trace the logged packet: {exc}")
    said = explain(result, target.state)
    text = said.text
    logged_drop = flow.event == EVENT_DROP
    if logged_drop and result.verdict == ACCEPT:
        text = f"logged as dropped, but the rules in force now allow it: {text}"
    elif not logged_drop and result.verdict == DROP:
        text = f"logged as accepted, but the rules in force now drop it: {text}"
    return FlowExplanation(
        text=text,
        verdict=result.verdict,
        reason=said.reason,
        rule_id=said.rule_id,
        nearest_rule_id=said.nearest_rule_id,
        differs=said.differs,
        group_ids=said.group_ids,
    )


@dataclass
class _HostCache:
    target: HostTarget
    explained: dict[tuple[Any, ...], FlowExplanation] = field(default_factory=dict)


class ExplanationCache:
    """Explanations per host target and flow shape; a host compiled again starts afresh."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._limit = limit
        self._hosts: dict[str, _HostCache] = {}
        self._lock = threading.Lock()

    def explain(self, target: HostTarget, flow: Flow) -> FlowExplanation:
        with self._lock:
            entry = self._hosts.get(target.name)
            if entry is None or entry.target is not target:
                entry = self._hosts[target.name] = _HostCache(target)
            known = entry.explained.get(shape(flow))
        if known is not None:
            return known
        found = explain_flow(target, flow)
        with self._lock:
            if len(entry.explained) >= self._limit:
                entry.explained.clear()  # rare: a host with that many distinct flows
            entry.explained[shape(flow)] = found
        return found

    def forget(self) -> None:
        with self._lock:
            self._hosts.clear()
