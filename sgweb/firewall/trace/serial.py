"""Traces and flows as plain JSON-ready data, for `trace --json`, the API and the browser.

Every rule appears as its iptables-save text plus its origin, so a consumer needs neither the IR
nor the renderer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sgweb.firewall.ir import Origin
from sgweb.firewall.render import render_rule
from sgweb.firewall.trace.explain import Explanation
from sgweb.firewall.trace.flow import Endpoint, Flow, Hop
from sgweb.firewall.trace.packet import Packet
from sgweb.firewall.trace.tracer import Trace


def origin_dict(origin: Origin) -> dict[str, Any]:
    return {key: value for key, value in asdict(origin).items() if value is not None}


def packet_dict(packet: Packet) -> dict[str, Any]:
    return {key: value for key, value in asdict(packet).items() if value is not None}


def trace_json(result: Trace, explanation: Explanation) -> dict[str, Any]:
    path = []
    for step in result.path:
        entry: dict[str, Any] = {
            "table": step.table,
            "chain": step.chain,
            "position": step.position,
            "event": step.event,
            "matched": step.matched,
            "skipped": step.skipped,
            "depth": step.depth,
        }
        if step.rule is not None:
            entry["rule"] = render_rule(step.rule)
            entry["target"] = step.rule.target
            entry["origin"] = origin_dict(step.rule.origin)
        path.append(entry)
    matched = [
        {
            "table": hit.table,
            "chain": hit.chain,
            "position": hit.position,
            "rule": render_rule(hit.rule),
            "origin": origin_dict(hit.rule.origin),
        }
        for hit in result.matched
    ]
    return {
        "verdict": result.verdict,
        "explanation": explanation.text,
        "reason": explanation.reason,
        "path": path,
        "matched": matched,
        "family": result.family,
        "packet": packet_dict(result.packet),
        "ct_state": result.ct_state,
        "ct_reason": result.ct_reason,
        "zone": result.zone,
        "details": explanation.to_dict(),
    }


def _endpoint_dict(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "address": endpoint.address,
        "port_id": endpoint.port.id if endpoint.port is not None else None,
        "port_name": endpoint.port.name if endpoint.port is not None else None,
        "host": endpoint.host,
    }


def hop_json(hop: Hop) -> dict[str, Any]:
    data: dict[str, Any] = {
        "host": hop.host,
        "leg": hop.leg,
        "reached": hop.reached,
        "packet": packet_dict(hop.packet),
    }
    if hop.trace is not None and hop.explanation is not None:
        data.update(trace_json(hop.trace, hop.explanation))
    return data


def flow_json(flow: Flow) -> dict[str, Any]:
    return {
        "verdict": flow.verdict,
        "reply_verdict": flow.reply_verdict,
        "explanation": flow.text,
        "source": _endpoint_dict(flow.source),
        "destination": _endpoint_dict(flow.destination),
        "hops": [hop_json(hop) for hop in flow.hops],
        "reply_hops": [hop_json(hop) for hop in flow.reply_hops],
    }
