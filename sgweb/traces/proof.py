"""Which hosts prove a trace, and how: probes from the source VM in the lab, else observation.

A trace from a port is proved on that port's host (the prover); from an outside address, on the
destination port's host. Every other host the flow crosses traces its own hop at the same time
(`hop_requests`, role ROLE_HOP), so a packet dropped at the destination's host is seen there.
A trace across a router has the router's network node as a hop between the two compute hosts:
its agent traces the router's namespace, so a drop by a firewall rule of the router is the
kernel's own account there instead of a packet that left one host and never reached the other.
A lab VM's namespace is where its probes come from (the lab's own
record, `sgweb.lab.core.LabState`); a port that is no lab VM cannot send anything, so its host
watches real traffic for a bounded time instead.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sgweb.firewall.fwaas.path import LAYER_ROUTER
from sgweb.hostsync.status import host_liveness
from sgweb.lab.core import LabState, lab_dir
from sgweb.networks.models import Port
from sgweb.traces.models import Trace
from sgweb.wire import traces as protocol

log = logging.getLogger(__name__)


def lab_namespace(port: Port) -> tuple[str, str] | None:
    """(VM namespace, MAC) of a lab VM's port, None when the port is no lab VM."""
    try:
        state = LabState.load(lab_dir())
    except Exception as exc:  # no lab, unreadable file: not a lab port
        log.debug("no lab state: %s", exc)
        return None
    if state is None:
        return None
    for vm in state.vms:
        if vm.port_id == str(port.pk) and port.host is not None and vm.host == port.host.name:
            return vm.netns, vm.mac
    return None


def agent_alive(host: str) -> bool:

    return host_liveness([host])[host].alive


def plan_proof(
    trace: Trace, source: Port | str, destination: Port | str, router_host: str | None = None
) -> tuple[protocol.ProofRequest | None, dict[str, Any] | None]:
    """The request for the proving agent, or (None, a failed trace-result) when none can run.
    `router_host`: the network node of the router the flow crosses (a routed trace)."""
    prover = source if isinstance(source, Port) else destination
    assert isinstance(prover, Port) and prover.host is not None  # start_trace checked both
    host = prover.host.name
    lab = lab_namespace(source) if isinstance(source, Port) else None
    static = trace.static_verdict
    if not agent_alive(host):
        return None, protocol.result_message(
            str(trace.pk), protocol.STATUS_FAILED, static, None,
            f"no proof: the agent of host {host} is not running",
        )  # fmt: skip
    hops = static_hops(trace.static_result or {}, router_host)
    if len(hops) > 1 or (hops and hops[0]["host"] != host):
        for hop in hops:
            if hop["host"] != host and not agent_alive(hop["host"]):
                hop["traced"], hop["why"] = False, "its agent is not running"
    else:
        hops = []  # one host: the prover's own trace is the whole proof
    request = protocol.ProofRequest(
        trace_id=str(trace.pk),
        host=host,
        mode=protocol.MODE_PROBE if lab else protocol.MODE_OBSERVE,
        family=trace.family,
        protocol=trace.protocol,
        src=trace.source_address,
        dst=trace.destination_address,
        dport=trace.port,
        icmp_type=trace.icmp_type,
        icmp_code=trace.icmp_code,
        static_verdict=static,
        source_netns=lab[0] if lab else None,
        source_mac=lab[1] if lab else None,
        hops=hops,
    )
    return request, None


def static_hops(static: dict[str, Any], router_host: str | None = None) -> list[dict[str, Any]]:
    """The hosts of the flow in order with the static verdict of each host's part: DROP if the
    request or its reply is dropped there, ACCEPT if they pass, None if nothing gets there.
    A routed trace (its static result has the `path`) on `router_host` gets the router's hop
    right after the source's host: the packet crosses the router between the two ports."""
    verdicts: dict[str, list[str | None]] = {}
    for leg in ("request", "reply"):
        for hop in (static.get(leg) or {}).get("hops") or []:
            seen = verdicts.setdefault(hop["host"], [])
            if hop.get("reached", True) and hop.get("verdict"):
                seen.append(hop["verdict"])
    hops = []
    for host, seen in verdicts.items():
        verdict = "DROP" if "DROP" in seen else ("ACCEPT" if seen else None)
        hops.append({"host": host, "static": verdict, "traced": True, "why": ""})
    path = static.get("path")
    if router_host is not None and isinstance(path, dict):
        hops.insert(min(1, len(hops)), router_hop(path, router_host))
    return hops


def router_hop(path: dict[str, Any], host: str) -> dict[str, Any]:
    """The router's hop of a routed flow: its network node, which router (its agent traces that
    router's namespace), and the router layer's static verdict each way (a reject is a drop to
    whoever waits for the packet; the kernel shows it as one)."""
    seen = [
        layer["verdict"]
        for key in ("layers", "reply_layers")
        for layer in path.get(key) or []
        if layer.get("kind") == LAYER_ROUTER and layer.get("reached") and layer.get("verdict")
    ]
    verdict = ("DROP" if any(v != "ACCEPT" for v in seen) else "ACCEPT") if seen else None
    return {
        "host": host,
        "static": verdict,
        "traced": True,
        "why": "",
        "router_id": path.get("router_id"),
        "router": path.get("router_name") or path.get("router_id"),
    }


def hop_requests(request: protocol.ProofRequest) -> list[protocol.ProofRequest]:
    """The requests for the other hosts of the flow: each traces its hop while the prover probes."""
    return [
        replace(
            request,
            host=hop["host"],
            role=protocol.ROLE_HOP,
            mode=protocol.MODE_OBSERVE,
            prover_host=request.host,
            source_netns=None,
            source_mac=None,
        )
        for hop in request.hops
        if hop["host"] != request.host and hop["traced"]
    ]
