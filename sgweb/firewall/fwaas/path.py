"""A packet's whole path between two networks: three layers, one verdict (issue 16).

A packet from a port on one network to a port on another crosses, in order: the source port's
egress security groups (on the source's compute host), the router joining the two networks (the
firewall group of the interface it enters, then of the one it leaves; see `trace.trace_router`
for which of them the kernel really consults) and the destination port's ingress security groups
(on the destination's host). Each layer is walked by the tracer that already matches its kernel
(`sgweb.firewall.trace.flow` for the port chains, `trace_router` for the router namespace); this
module only chains them: the packet the router forwards carries the router's MAC, a layer after
a drop is not reached, and the words name the layer that decided.

Pure, like the rest of sgweb.firewall: frozen dataclasses in, deterministic result out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sgweb.firewall.fwaas.model import RouterInterface, RouterState
from sgweb.firewall.fwaas.trace import ACCEPT as ROUTER_ACCEPT
from sgweb.firewall.fwaas.trace import DROP as ROUTER_DROP
from sgweb.firewall.fwaas.trace import REJECTED as ROUTER_REJECTED
from sgweb.firewall.fwaas.trace import RouterTrace, interface_for, trace_router
from sgweb.firewall.ir import ACCEPT, DROP
from sgweb.firewall.trace.flow import (
    LAYOUT_QBR,
    REQUEST,
    Endpoint,
    Flow,
    Hop,
    HostTarget,
    resolve_endpoint,
    trace_stretch,
)
from sgweb.firewall.trace.packet import CT_NEW, Packet, TraceError
from sgweb.firewall.trace.serial import hop_json, packet_dict

REJECT = "REJECT"  # the router answered (ICMP unreachable / TCP RST): the packet never arrives

LAYER_SOURCE = "source-egress"
LAYER_ROUTER = "router"
LAYER_DESTINATION = "destination-ingress"
LAYERS = (LAYER_SOURCE, LAYER_ROUTER, LAYER_DESTINATION)

_VERDICT_OF_ROUTER = {ROUTER_ACCEPT: ACCEPT, ROUTER_DROP: DROP, ROUTER_REJECTED: REJECT}
_VERB = {ACCEPT: "allowed", DROP: "dropped", REJECT: "rejected"}


@dataclass(frozen=True, slots=True)
class Layer:
    """One of the three layers and what it did; `reached` is False after an earlier drop."""

    kind: str  # LAYER_SOURCE | LAYER_ROUTER | LAYER_DESTINATION
    title: str  # "egress security groups of port web-1 on compute1"
    reached: bool
    verdict: str | None  # ACCEPT | DROP | REJECT; None when not reached
    words: str
    hop: Hop | None = None  # the security-group layers: the host traversal
    router: RouterTrace | None = None  # the router layer

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title,
            "reached": self.reached,
            "verdict": self.verdict,
            "words": self.words,
        }
        if self.hop is not None:
            data["hop"] = hop_json(self.hop)
        if self.router is not None:
            data["router"] = self.router.as_dict()
        return data


@dataclass(frozen=True, slots=True)
class PathTrace:
    source: Endpoint
    destination: Endpoint
    router_id: str
    router_name: str
    packet: Packet  # as the source sends it
    verdict: str  # ACCEPT | DROP | REJECT
    layers: tuple[Layer, ...]  # always the three, in LAYERS order
    deciding: str | None  # the kind of the layer that stopped the packet; None when allowed
    words: str

    def layer(self, kind: str) -> Layer:
        return next(layer for layer in self.layers if layer.kind == kind)

    def as_flow(self) -> Flow:
        """The two security-group traversals as the cross-host `Flow` the trace page and the
        kernel proof already read (the router is in `as_dict()["layers"]`). A reject counts
        as a drop there: the packet does not arrive."""
        hops = tuple(layer.hop for layer in self.layers if layer.hop is not None)
        return Flow(self.source, self.destination, ACCEPT if self.verdict == ACCEPT else DROP, hops)

    def as_dict(self) -> dict[str, Any]:
        return {
            "router_id": self.router_id,
            "router_name": self.router_name,
            "verdict": self.verdict,
            "deciding": self.deciding,
            "words": self.words,
            "packet": packet_dict(self.packet),
            "layers": [layer.as_dict() for layer in self.layers],
        }


def _port_end(text: str, target: HostTarget, family: int | None, side: str) -> Endpoint:
    end = resolve_endpoint(text, [target], family)
    if end.port is None:
        raise TraceError(f"the {side} {text} is not a port on host {target.name}")
    return end


def _side(state: RouterState, address: str, side: str) -> RouterInterface:
    interface = interface_for(state, address)
    if interface is None:
        name = state.router.name or state.router.id
        raise TraceError(f"router {name} has no interface on the {side} {address}")
    return interface


def _sg_layer(kind: str, end: Endpoint, hop: Hop) -> Layer:
    port = end.port
    assert port is not None  # _port_end made sure
    direction = "egress" if kind == LAYER_SOURCE else "ingress"
    role = "source" if kind == LAYER_SOURCE else "destination"
    title = f"{direction} security groups of {role} port {port.name or port.id} on {end.host}"
    if hop.trace is None or hop.explanation is None:
        return Layer(kind, title, False, None, "not reached: dropped before", hop)
    return Layer(kind, title, True, hop.trace.verdict, hop.explanation.text, hop)


def _router_layer(state: RouterState, result: RouterTrace | None) -> Layer:
    title = f"router {state.router.name or state.router.id}"
    if result is None:
        return Layer(LAYER_ROUTER, title, False, None, "not reached: dropped before")
    verdict = _VERDICT_OF_ROUTER[result.verdict]
    return Layer(LAYER_ROUTER, title, True, verdict, result.words, router=result)


def _path_words(layers: tuple[Layer, ...], deciding: Layer | None, router: str) -> str:
    if deciding is None:
        return "allowed through all three layers: " + "; ".join(
            f"{layer.title}: {layer.words}" for layer in layers
        )
    if deciding.kind == LAYER_ROUTER:
        return deciding.words  # already names the rule, policy, position, router and interface
    if deciding.kind == LAYER_SOURCE:
        return f"{deciding.words}; decided by the {deciding.title}, before router {router}"
    return f"{deciding.words}; decided by the {deciding.title}, after router {router} forwarded it"


def trace_path(
    source_host: HostTarget,
    destination_host: HostTarget,
    router: RouterState,
    source: str,
    destination: str,
    *,
    protocol: str | int | None = None,
    sport: int | None = None,
    dport: int | None = None,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
    family: int | None = None,
    layout: str = LAYOUT_QBR,
    uplink: str = "eth1",
    ct_state: str = CT_NEW,
) -> PathTrace:
    """Trace `source` (a port on `source_host`: id, name or device) to `destination` (a port on
    `destination_host`) through `router`, which routes between their subnets.

    The router's interfaces are found as the router routes: the one on the source's subnet is
    where the packet enters, the one on the destination's subnet where it leaves. On the source
    side the frame is addressed to the router's MAC; on the destination side it comes from it.
    """
    src = _port_end(source, source_host, family, "source")
    dst = _port_end(destination, destination_host, family, "destination")
    inbound = _side(router, src.address, "source")
    outbound = _side(router, dst.address, "destination")
    if inbound.port_id == outbound.port_id:
        raise TraceError(
            f"{src.address} and {dst.address} are on one subnet: the packet does not cross "
            f"router {router.router.name or router.router.id}"
        )
    sent = Packet(
        src=src.address,
        dst=dst.address,
        protocol=protocol,
        sport=sport,
        dport=dport,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        src_mac=src.port.mac_address if src.port else None,
        dst_mac=inbound.mac_address,
        ct_state=ct_state,
    )
    beyond = Endpoint(dst.address)  # the destination side is the router's to forward
    before = Endpoint(src.address)
    verdict, (source_hop,) = trace_stretch(
        sent, src, beyond, [source_host], layout=layout, uplink=uplink
    )
    routed: RouterTrace | None = None
    if verdict == ACCEPT:
        routed = trace_router(
            router, sent, in_port_id=inbound.port_id, out_port_id=outbound.port_id
        )
        verdict = _VERDICT_OF_ROUTER[routed.verdict]
    assert dst.port is not None  # _port_end made sure
    forwarded = replace(sent, src_mac=outbound.mac_address, dst_mac=dst.port.mac_address)
    # Not reached unless everything before let it through (as a flow's later hop shows it).
    destination_hop = Hop(destination_host.name, REQUEST, forwarded, None, None)
    if verdict == ACCEPT:
        verdict, (destination_hop,) = trace_stretch(
            forwarded,
            before,
            dst,
            [destination_host],
            layout=layout,
            uplink=uplink,
        )
    layers = (
        _sg_layer(LAYER_SOURCE, src, source_hop),
        _router_layer(router, routed),
        _sg_layer(LAYER_DESTINATION, dst, destination_hop),
    )
    deciding = next((layer for layer in layers if layer.reached and layer.verdict != ACCEPT), None)
    return PathTrace(
        source=src,
        destination=dst,
        router_id=router.router.id,
        router_name=router.router.name or router.router.id,
        packet=sent,
        verdict=verdict,
        layers=layers,
        deciding=deciding.kind if deciding else None,
        words=_path_words(layers, deciding, router.router.name or router.router.id),
    )


__all__ = [
    "LAYERS",
    "LAYER_DESTINATION",
    "LAYER_ROUTER",
    "LAYER_SOURCE",
    "REJECT",
    "Layer",
    "PathTrace",
    "trace_path",
]
