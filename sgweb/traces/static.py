"""The static verdict of a trace: the packet tracer over the involved hosts' desired states.

Hosts come compiled from `sgweb.hostsync.compiled` (cached per host fingerprint), so a verdict
costs a walk through prepared indexes, not a compile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from sgweb.firewall.ir import ACCEPT, DROP
from sgweb.firewall.trace.flow import Flow, HostTarget, trace_flow
from sgweb.firewall.trace.serial import flow_json


def _deciding_hop_reason(flow: Flow) -> str:
    hops = list(flow.hops)
    if flow.verdict == ACCEPT and flow.reply_verdict == DROP:
        hops = list(flow.reply_hops)
    decided = [hop for hop in hops if hop.explanation is not None]
    if not decided:
        return "no-port"
    if flow.verdict == DROP or flow.reply_verdict == DROP:
        dropped = [hop for hop in decided if hop.trace is not None and hop.trace.verdict == DROP]
        if dropped:
            return dropped[0].explanation.reason  # type: ignore[union-attr]
    return decided[-1].explanation.reason  # type: ignore[union-attr]


def overall_verdict(flow: Flow) -> str:
    if flow.verdict == DROP or flow.reply_verdict == DROP:
        return DROP
    return ACCEPT


def static_message(trace_id: str, flow: Flow) -> dict[str, Any]:
    """The `trace-static` message for a flow traced with its reply."""
    request = flow_json(replace(flow, reply_verdict=None, reply_hops=()))
    reply = None
    if flow.reply_hops:
        reply = flow_json(
            Flow(flow.destination, flow.source, flow.reply_verdict or DROP, flow.reply_hops)
        )
    return {
        "type": "trace-static",
        "trace_id": trace_id,
        "verdict": overall_verdict(flow),
        "explanation": flow.text,
        "reason": _deciding_hop_reason(flow),
        "request": request,
        "reply": reply,
    }


def trace_static(
    targets: Iterable[HostTarget],
    source: str,
    destination: str,
    *,
    protocol: str,
    family: int,
    dport: int | None = None,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> Flow:
    """Trace source -> destination (port ids or addresses) and, if allowed, its reply."""
    return trace_flow(
        list(targets),
        source,
        destination,
        protocol=protocol,
        dport=dport,
        sport=40000 if dport is not None else None,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        family=family,
        reply=True,
    )
