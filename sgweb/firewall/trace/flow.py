"""Trace a flow between two endpoints across the hosts it crosses.

A packet from port A to port B is filtered twice in Neutron's hybrid layout: on A's host as it
leaves A's tap (physdev-in = A's tap, egress chain) and on B's host as it reaches B's tap
(physdev-out = B's tap, ingress chain). With one `qbr` bridge per port those are separate
traversals even on one host: A's frame leaves qbrA through its `qvb` veth and re-enters qbrB
through B's `qvb`. With one bridge shared by the ports of a host (the kernel tier's topology,
or Linux-bridge agent networks) two ports on one host meet in a single traversal that has both
physdev-in and physdev-out, and the other side of a remote hop is the uplink.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypedDict

from sgweb.firewall import names
from sgweb.firewall.compiler import compile_host as default_compile
from sgweb.firewall.ir import ACCEPT, DROP, CompiledHost
from sgweb.firewall.model import HostState, Port
from sgweb.firewall.trace.explain import Explanation, explain
from sgweb.firewall.trace.tracer import (
    CT_ESTABLISHED,
    CT_NEW,
    CT_RELATED,
    HOOK_INPUT,
    HOOK_OUTPUT,
    Packet,
    Trace,
    TraceError,
    TraceIndex,
    prepare,
    trace,
)

LAYOUT_QBR = "qbr"  # one bridge per port, Neutron's hybrid iptables driver
LAYOUT_SHARED = "shared"  # one bridge for every port of a host
LAYOUTS = (LAYOUT_QBR, LAYOUT_SHARED)

REQUEST = "request"
REPLY = "reply"

# Requests conntrack pairs with an answer (nf_conntrack_proto_icmp{,v6}.c's invmap).
_ICMP_ANSWER: dict[int | None, int] = {8: 0, 13: 14, 15: 16, 17: 18, 128: 129, 139: 140}


@dataclass(frozen=True, slots=True)
class HostTarget:
    """One host a flow may cross: its desired state, compiled state and (optionally) a prepared
    index to reuse across traces."""

    name: str
    state: HostState
    compiled: CompiledHost
    index: TraceIndex | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: Port | None = None
    host: str | None = None  # the host name, when the port is on one of the given hosts

    @property
    def device(self) -> str | None:
        if self.port is None:
            return None
        return self.port.device or names.device_name(self.port.id)


@dataclass(frozen=True, slots=True)
class Hop:
    host: str
    leg: str  # REQUEST | REPLY
    packet: Packet
    trace: Trace | None  # None: an earlier hop dropped the packet, so it never got here
    explanation: Explanation | None

    @property
    def reached(self) -> bool:
        return self.trace is not None


@dataclass(frozen=True, slots=True)
class Flow:
    source: Endpoint
    destination: Endpoint
    verdict: str  # the request's: DROP if any hop dropped it
    hops: tuple[Hop, ...]
    reply_verdict: str | None = None  # None when the reply was not asked for or not sent
    reply_hops: tuple[Hop, ...] = ()

    @property
    def text(self) -> str:
        parts = [h.explanation.text for h in self.hops if h.explanation is not None]
        if not self.hops:
            parts.append("not filtered: neither end is a port on the given hosts")
        if self.reply_hops:
            replies = [h.explanation.text for h in self.reply_hops if h.explanation is not None]
            parts.append("reply: " + "; ".join(replies))
        return "; ".join(parts)


class HostTargetCache:
    """Compiled, prepared hosts kept between traces, so a static verdict costs a walk and not a
    compile: rebuilt only when a host's revision changes (or, without a revision, when it is
    given a different HostState object). Thread-safe enough for a web worker: the worst case of
    a race is compiling the same host twice."""

    def __init__(
        self,
        compile_host: Callable[[HostState], CompiledHost] | None = None,
        limit: int = 64,
    ) -> None:
        if compile_host is None:
            compile_host = default_compile
        self._compile = compile_host
        self._limit = limit
        self._entries: dict[str, tuple[object, HostTarget]] = {}

    def target(self, name: str, state: HostState, revision: object | None = None) -> HostTarget:
        key = revision if revision is not None else id(state)
        cached = self._entries.get(name)
        # Without a revision the key is an id, which is only valid while that object lives.
        if (
            cached is not None
            and cached[0] == key
            and (revision is not None or cached[1].state is state)
        ):
            return cached[1]
        compiled = self._compile(state)
        target = HostTarget(name, state, compiled, prepare(compiled))
        self._entries.pop(name, None)
        if len(self._entries) >= self._limit:
            self._entries.pop(next(iter(self._entries)))
        self._entries[name] = (key, target)
        return target


def _targets(
    hosts: Iterable[HostTarget] | Mapping[str, tuple[HostState, CompiledHost]],
) -> list[HostTarget]:
    if isinstance(hosts, Mapping):
        return [HostTarget(name, state, compiled) for name, (state, compiled) in hosts.items()]
    return list(hosts)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def port_address(port: Port, family: int | None) -> str | None:
    """The port's first fixed IP of that family (any family: None), or None."""
    for address in port.fixed_ips:
        if family is None or ipaddress.ip_address(address).version == family:
            return address
    return None


def _address_of(port: Port, family: int | None) -> str:
    address = port_address(port, family)
    if address is None:
        raise TraceError(f"port {port.id} has no IPv{family} address")
    return address


def resolve_endpoint(text: str, targets: list[HostTarget], family: int | None = None) -> Endpoint:
    """A port id, name or device on one of the hosts, or an address (which, when it is a port's
    fixed IP on one of the hosts, means that port)."""
    is_address = _is_address(text)
    for target in targets:
        for port in target.state.ports:
            device = port.device or names.device_name(port.id)
            if is_address:
                if text in port.fixed_ips:
                    return Endpoint(text, port, target.name)
            elif text in (port.id, device) or (port.name and text == port.name):
                return Endpoint(_address_of(port, family), port, target.name)
    if is_address:
        return Endpoint(text)
    raise TraceError(f"{text!r} is neither an address nor a port on the given hosts")


def _veth(port: Port) -> str:
    # The qbr side of the port's veth pair to the integration bridge (qvb...).
    return names.veth_name(port.id)


def _bridge(port: Port, layout: str) -> str | None:
    if port.bridge:
        return port.bridge
    return names.bridge_name(port.id) if layout == LAYOUT_QBR else None


class _LegFields(TypedDict):
    physdev_in: str | None
    physdev_out: str | None
    in_interface: str | None


def _legs(
    source: Endpoint, destination: Endpoint, layout: str, uplink: str
) -> list[tuple[str, _LegFields]]:
    """(host, physdev fields) for each traversal, in the order the packet makes them."""
    legs: list[tuple[str, _LegFields]] = []
    src_port, dst_port = source.port, destination.port
    same_host = src_port is not None and dst_port is not None and source.host == destination.host
    if src_port is not None and source.host is not None:
        if layout == LAYOUT_SHARED and same_host:
            out = destination.device
        else:
            out = _veth(src_port) if layout == LAYOUT_QBR else uplink
        legs.append(
            (
                source.host,
                {
                    "physdev_in": source.device,
                    "physdev_out": out,
                    "in_interface": _bridge(src_port, layout),
                },
            )
        )
    covered = layout == LAYOUT_SHARED and same_host
    if dst_port is not None and destination.host is not None and not covered:
        entry = _veth(dst_port) if layout == LAYOUT_QBR else uplink
        legs.append(
            (
                destination.host,
                {
                    "physdev_in": entry,
                    "physdev_out": destination.device,
                    "in_interface": _bridge(dst_port, layout),
                },
            )
        )
    return legs


def _walk_legs(
    packet: Packet,
    source: Endpoint,
    destination: Endpoint,
    by_name: dict[str, HostTarget],
    layout: str,
    uplink: str,
    leg: str,
    request_hops: tuple[Hop, ...] | None = None,
) -> tuple[str, tuple[Hop, ...]]:
    """Trace each traversal in turn; with `request_hops`, the legs are a reply's, and each
    traversal's conntrack state is checked against what its request left behind."""
    hops: list[Hop] = []
    verdict = ACCEPT
    legs = _legs(source, destination, layout, uplink)
    for position, (host, fields) in enumerate(legs):
        hop_packet = replace(packet, **fields)
        if verdict == DROP:
            hops.append(Hop(host, leg, hop_packet, None, None))
            continue
        target = by_name[host]
        result = trace(target.compiled, hop_packet, index=target.index)
        if request_hops is not None and result.ct_state == CT_ESTABLISHED:
            request = _request_hop(request_hops, len(legs) - 1 - position, host)
            if not _left_a_connection(request, result):
                # No entry for this reply in its zone: conntrack sees a packet of its own.
                hop_packet = replace(hop_packet, ct_state=CT_NEW)
                result = trace(target.compiled, hop_packet, index=target.index)
        hops.append(Hop(host, leg, hop_packet, result, explain(result, target.state)))
        verdict = result.verdict
    return verdict, tuple(hops)


def trace_stretch(
    packet: Packet,
    source: Endpoint,
    destination: Endpoint,
    hosts: Iterable[HostTarget],
    *,
    layout: str = LAYOUT_QBR,
    uplink: str = "eth1",
    leg: str = REQUEST,
) -> tuple[str, tuple[Hop, ...]]:
    """Trace one stretch of a longer path: the traversals of the ends that are ports on
    `hosts` (an end given as a bare address is filtered elsewhere). A routed path walks its
    source side and its destination side as two stretches, with the router between them."""
    if layout not in LAYOUTS:
        raise TraceError(f"layout must be one of {', '.join(LAYOUTS)}")
    by_name = {
        target.name: (
            target if target.index is not None else replace(target, index=prepare(target.compiled))
        )
        for target in hosts
    }
    return _walk_legs(packet, source, destination, by_name, layout, uplink, leg)


def trace_reply(
    compiled: CompiledHost,
    request: Trace,
    *,
    index: TraceIndex | None = None,
    policies: Mapping[str, str] | None = None,
) -> Trace:
    """The reply to a request traced through the same host (`reply_to`), ESTABLISHED only if
    the request's traversal left it a conntrack entry in the zone the reply is given."""
    answer = trace(compiled, reply_to(request.packet), index=index, policies=policies)
    if answer.ct_state == CT_ESTABLISHED and not _left_a_connection_by(request, answer):
        answer = trace(
            compiled,
            replace(answer.packet, ct_state=CT_NEW),
            index=index,
            policies=policies,
        )
    return answer


def _request_hop(request_hops: tuple[Hop, ...], position: int, host: str) -> Hop | None:
    # A reply crosses the request's traversals in reverse order.
    if 0 <= position < len(request_hops) and request_hops[position].host == host:
        return request_hops[position]
    return None


def _left_a_connection(request: Hop | None, reply: Trace) -> bool:
    if request is None or request.trace is None:
        return False
    return _left_a_connection_by(request.trace, reply)


def _left_a_connection_by(done: Trace, reply: Trace) -> bool:
    """Whether the request's traversal left a conntrack entry that this reply traversal finds:
    the request was tracked (not notrack, not INVALID) in the zone the reply is given."""
    tracked = not done.notrack and done.ct_state in (CT_NEW, CT_ESTABLISHED, CT_RELATED)
    return tracked and done.zone == reply.zone


def reply_to(request: Packet) -> Packet:
    """The answer to `request` as the same host sees it: addresses, ports, MACs and bridge
    ports swapped, an echo request answered by an echo reply, a SYN by a SYN-ACK, an SCTP
    INIT by an INIT-ACK, conntrack state ESTABLISHED (trace_flow checks each traversal really
    has the connection)."""
    request_type = request.effective_icmp_type
    hook, physdev_in, physdev_out = request.hook, request.physdev_out, request.physdev_in
    if request.hook == HOOK_INPUT:  # the host answers from its own stack
        hook, physdev_in, physdev_out = HOOK_OUTPUT, None, None
    elif request.hook == HOOK_OUTPUT:
        hook, physdev_in, physdev_out = HOOK_INPUT, request.physdev_out, None
    return replace(
        request,
        hook=hook,
        src=request.dst,
        dst=request.src,
        sport=request.dport,
        dport=request.sport,
        icmp_type=_ICMP_ANSWER.get(request_type, request_type) if request.is_icmp else None,
        tcp_flags=_answer_flags(request),
        sctp_chunk="INIT_ACK" if request.protocol_number == _SCTP else None,
        src_mac=request.dst_mac,
        dst_mac=request.src_mac,
        physdev_in=physdev_in,
        physdev_out=physdev_out,
        ct_state=CT_ESTABLISHED,
    )


def _answer_flags(request: Packet) -> str | None:
    if request.protocol_number != _TCP:
        return None
    flags = request.flag_set
    return "SYN,ACK" if "SYN" in flags and "ACK" not in flags else "ACK"


_TCP = 6
_SCTP = 132


def trace_flow(
    hosts: Iterable[HostTarget] | Mapping[str, tuple[HostState, CompiledHost]],
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
    reply: bool = False,
    ct_state: str = CT_NEW,
    src_address: str | None = None,
    src_mac: str | None = None,
    tcp_flags: str | None = None,
) -> Flow:
    """Trace `source` -> `destination` (port ids, names, devices or addresses) over `hosts`.

    `src_address` / `src_mac` override what the source port would send (to show spoofing).
    With `reply`, an accepted request is followed by its reply (ports swapped, echo reply for
    an echo request, SYN-ACK for a SYN) through the same hosts in reverse order: ESTABLISHED
    where the request left a conntrack entry in the zone the reply gets, otherwise a packet of
    its own (a request from a stateless port leaves none: its TCP and ICMP replies are
    INVALID to a stateful port's conntrack).
    """
    if layout not in LAYOUTS:
        raise TraceError(f"layout must be one of {', '.join(LAYOUTS)}")
    targets = [
        target if target.index is not None else replace(target, index=prepare(target.compiled))
        for target in _targets(hosts)
    ]
    by_name = {target.name: target for target in targets}
    if family is None:
        explicit = [t for t in (source, destination, src_address) if t and _is_address(t)]
        family = ipaddress.ip_address(explicit[0]).version if explicit else None
    src = resolve_endpoint(source, targets, family)
    dst = resolve_endpoint(destination, targets, family)
    request = Packet(
        src=src_address or src.address,
        dst=dst.address,
        protocol=protocol,
        sport=sport,
        dport=dport,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        src_mac=src_mac or (src.port.mac_address if src.port else None),
        dst_mac=dst.port.mac_address if dst.port else None,
        ct_state=ct_state,
        tcp_flags=tcp_flags,
    )
    verdict, hops = _walk_legs(request, src, dst, by_name, layout, uplink, REQUEST)
    if not reply or verdict != ACCEPT:
        return Flow(src, dst, verdict, hops)
    answer = reply_to(request)
    reply_verdict, reply_hops = _walk_legs(
        answer, dst, src, by_name, layout, uplink, REPLY, request_hops=hops
    )
    return Flow(src, dst, verdict, hops, reply_verdict, reply_hops)
