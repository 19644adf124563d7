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
from sgweb.firewall.trace.explain import explain
from sgweb.firewall.trace.flow import (
    LAYOUT_QBR,
    REPLY,
    REQUEST,
    Endpoint,
    Flow,
    Hop,
    HostTarget,
    reply_to,
    resolve_endpoint,
    trace_reply,
    trace_stretch,
)
from sgweb.firewall.trace.packet import CT_ESTABLISHED, CT_NEW, Packet, TraceError
from sgweb.firewall.trace.serial import hop_json, packet_dict

REJECT = "REJECT"  # the router answered (ICMP unreachable / TCP RST): the packet never arrives

LAYER_SOURCE = "source-egress"
LAYER_ROUTER = "router"
LAYER_DESTINATION = "destination-ingress"
LAYERS = (LAYER_SOURCE, LAYER_ROUTER, LAYER_DESTINATION)
# The reply crosses them the other way: out of the destination port, back through the router,
# into the source port.
LAYER_REPLY_DESTINATION = "destination-egress"
LAYER_REPLY_SOURCE = "source-ingress"
REPLY_LAYERS = (LAYER_REPLY_DESTINATION, LAYER_ROUTER, LAYER_REPLY_SOURCE)
_SG_SIDES = {
    LAYER_SOURCE: ("egress", "source"),
    LAYER_DESTINATION: ("ingress", "destination"),
    LAYER_REPLY_DESTINATION: ("egress", "destination"),
    LAYER_REPLY_SOURCE: ("ingress", "source"),
}

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
    # The reply, traced only when asked for and the request arrived (REPLY_LAYERS order).
    reply_verdict: str | None = None
    reply_layers: tuple[Layer, ...] = ()
    reply_deciding: str | None = None

    def layer(self, kind: str) -> Layer:
        return next(layer for layer in self.layers if layer.kind == kind)

    def as_flow(self) -> Flow:
        """The two security-group traversals as the cross-host `Flow` the trace page and the
        kernel proof already read (the router is in `as_dict()["layers"]`). A reject counts
        as a drop there: the packet does not arrive."""
        hops = tuple(layer.hop for layer in self.layers if layer.hop is not None)
        replies = tuple(layer.hop for layer in self.reply_layers if layer.hop is not None)
        reply = None
        if self.reply_verdict is not None:
            reply = ACCEPT if self.reply_verdict == ACCEPT else DROP
        verdict = ACCEPT if self.verdict == ACCEPT else DROP
        return Flow(self.source, self.destination, verdict, hops, reply, replies)

    def as_dict(self) -> dict[str, Any]:
        return {
            "router_id": self.router_id,
            "router_name": self.router_name,
            "verdict": self.verdict,
            "deciding": self.deciding,
            "words": self.words,
            "packet": packet_dict(self.packet),
            "layers": [layer.as_dict() for layer in self.layers],
            "reply_verdict": self.reply_verdict,
            "reply_deciding": self.reply_deciding,
            "reply_layers": [layer.as_dict() for layer in self.reply_layers],
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
    direction, role = _SG_SIDES[kind]
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
    if deciding.kind in (LAYER_SOURCE, LAYER_REPLY_DESTINATION):
        return f"{deciding.words}; decided by the {deciding.title}, before router {router}"
    return f"{deciding.words}; decided by the {deciding.title}, after router {router} forwarded it"


def _reply(
    source_host: HostTarget,
    destination_host: HostTarget,
    router: RouterState,
    request_hops: tuple[Hop, Hop],
    back: tuple[RouterInterface, RouterInterface],
    ends: tuple[Endpoint, Endpoint],
) -> tuple[str, tuple[Layer, ...]]:
    """The reply to an arrived request, back along the path: each port's conntrack entry decides
    whether its chain sees it ESTABLISHED (`trace_reply`); the router saw the request pass its
    FORWARD chain, so its conntrack holds the connection."""
    source_hop, destination_hop = request_hops
    assert source_hop.trace is not None and destination_hop.trace is not None
    answer = trace_reply(destination_host.compiled, destination_hop.trace)
    out_of_destination = Hop(
        destination_host.name,
        REPLY,
        answer.packet,
        answer,
        explain(answer, destination_host.state),
    )
    verdict = answer.verdict
    routed: RouterTrace | None = None
    if verdict == ACCEPT:
        routed = trace_router(
            router,
            replace(answer.packet, ct_state=CT_ESTABLISHED),
            in_port_id=back[0].port_id,
            out_port_id=back[1].port_id,
        )
        verdict = _VERDICT_OF_ROUTER[routed.verdict]
    into_source = Hop(source_host.name, REPLY, reply_to(source_hop.packet), None, None)
    if verdict == ACCEPT:
        result = trace_reply(source_host.compiled, source_hop.trace)
        into_source = Hop(
            source_host.name, REPLY, result.packet, result, explain(result, source_host.state)
        )
        verdict = result.verdict
    layers = (
        _sg_layer(LAYER_REPLY_DESTINATION, ends[1], out_of_destination),
        _router_layer(router, routed),
        _sg_layer(LAYER_REPLY_SOURCE, ends[0], into_source),
    )
    return verdict, layers


def _request(
    hosts: tuple[HostTarget, HostTarget],
    router: RouterState,
    sent: Packet,
    ends: tuple[Endpoint, Endpoint],
    sides: tuple[RouterInterface, RouterInterface],
    *,
    layout: str,
    uplink: str,
) -> tuple[str, RouterTrace | None, Hop, Hop]:
    """The request along the path: out of the source's host, through the router, into the
    destination's host, each stretch walked only if everything before let it through."""
    (source_host, destination_host), (src, dst), (inbound, outbound) = hosts, ends, sides
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
    return verdict, routed, source_hop, destination_hop


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
    reply: bool = False,
) -> PathTrace:
    """Trace `source` (a port on `source_host`: id, name or device) to `destination` (a port on
    `destination_host`) through `router`, which routes between their subnets.

    The router's interfaces are found as the router routes: the one on the source's subnet is
    where the packet enters, the one on the destination's subnet where it leaves. On the source
    side the frame is addressed to the router's MAC; on the destination side it comes from it.
    With `reply`, a request that arrives is followed by its reply back along the path.
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
    verdict, routed, source_hop, destination_hop = _request(
        (source_host, destination_host), router, sent, (src, dst), (inbound, outbound),
        layout=layout, uplink=uplink,
    )  # fmt: skip
    layers = (
        _sg_layer(LAYER_SOURCE, src, source_hop),
        _router_layer(router, routed),
        _sg_layer(LAYER_DESTINATION, dst, destination_hop),
    )
    deciding = _deciding(layers)
    name = router.router.name or router.router.id
    words = _path_words(layers, deciding, name)
    reply_verdict: str | None = None
    reply_layers: tuple[Layer, ...] = ()
    reply_deciding: Layer | None = None
    if reply and verdict == ACCEPT:
        assert source_hop.trace is not None and destination_hop.trace is not None
        reply_verdict, reply_layers = _reply(
            source_host,
            destination_host,
            router,
            (source_hop, destination_hop),
            (outbound, inbound),
            (src, dst),
        )
        reply_deciding = _deciding(reply_layers)
        if reply_deciding is not None:
            words = "the request passes all three layers, but its reply is " + _path_words(
                reply_layers, reply_deciding, name
            )
    return PathTrace(
        source=src,
        destination=dst,
        router_id=router.router.id,
        router_name=name,
        packet=sent,
        verdict=verdict,
        layers=layers,
        deciding=deciding.kind if deciding else None,
        words=words,
        reply_verdict=reply_verdict,
        reply_layers=reply_layers,
        reply_deciding=reply_deciding.kind if reply_deciding else None,
    )


def _deciding(layers: tuple[Layer, ...]) -> Layer | None:
    return next((layer for layer in layers if layer.reached and layer.verdict != ACCEPT), None)


__all__ = [
    "LAYERS",
    "LAYER_DESTINATION",
    "LAYER_REPLY_DESTINATION",
    "LAYER_REPLY_SOURCE",
    "LAYER_ROUTER",
    "LAYER_SOURCE",
    "REJECT",
    "REPLY_LAYERS",
    "Layer",
    "PathTrace",
    "trace_path",
]
