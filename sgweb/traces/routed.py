"""Traces between two networks: the path through the router that joins them (issue 16).

When the two ports of a trace are on different networks, the packet crosses three layers: the
source port's egress security groups, the router (its firewall groups) and the destination
port's ingress security groups. `routed_static` traces them as one path with the pure
`sgweb.firewall.fwaas.path` tracer, over the same desired states the agents apply (the compute
hosts' compiled states, the network node's router state), and puts the path in the
`trace-static` message next to the hosts' flow the page and the kernel proof already read.
Without a router on both subnets nothing forwards, and the trace says so instead of tracing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from sgweb.firewall.fwaas.model import RouterState
from sgweb.firewall.fwaas.path import LAYER_ROUTER, PathTrace, trace_path
from sgweb.fwaas.desired_state import network_node_state
from sgweb.hostsync.compiled import host_target
from sgweb.networks.models import Port
from sgweb.routers.lookup import router_between
from sgweb.tenancy.errors import Invalid
from sgweb.traces.static import overall_verdict, static_message


@dataclass(frozen=True, slots=True)
class Route:
    """The router between a trace's two ports, and its state as its network node has it."""

    router_name: str
    state: RouterState
    host: str  # the network node whose router namespace forwards (and filters) the packet


def _subnet_id(port: Port, family: int) -> Any:
    for fixed in port.fixed_ips.all():
        if ipaddress.ip_address(fixed.ip_address).version == family:
            return fixed.subnet_id
    return None


def _network_name(port: Port) -> str:
    return port.network.name or str(port.network_id)


def find_route(source: Port, destination: Port, family: int) -> Route | None:
    """None when both ports are on one network (no router crossed); the route otherwise. Raises
    Invalid with the reason when nothing forwards between the two networks."""
    if source.network_id == destination.network_id:
        return None
    src_net, dst_net = _network_name(source), _network_name(destination)
    src_subnet, dst_subnet = _subnet_id(source, family), _subnet_id(destination, family)
    router = None
    if src_subnet is not None and dst_subnet is not None:
        router = router_between(src_subnet, dst_subnet)
    if router is None:
        raise Invalid.from_errors(
            {
                "destination": [
                    f"no route between {src_net} and {dst_net}: no router has an interface on "
                    f"both IPv{family} subnets."
                ]
            }
        )
    name = router.name or str(router.pk)
    if router.host is None:
        raise Invalid.from_errors(
            {"destination": [f"router {name} runs on no network node: nothing forwards yet."]}
        )
    for state in network_node_state(router.host.name).routers:
        if state.router.id == str(router.pk):
            return Route(name, state, router.host.name)
    raise Invalid.from_errors(
        {"destination": [f"router {name} is administratively down: it forwards nothing."]}
    )


def _reason(path: PathTrace, flow_reason: str) -> str:
    if path.deciding == LAYER_ROUTER:
        layer = path.layer(LAYER_ROUTER)
    elif path.reply_deciding == LAYER_ROUTER:
        layer = path.reply_layers[1]
    else:
        return flow_reason
    step = layer.router.deciding if layer.router is not None else None
    return f"firewall-{step.reason}" if step is not None else flow_reason


def routed_static(
    trace_id: str,
    source: Port,
    destination: Port,
    route: Route,
    *,
    protocol: str,
    family: int,
    dport: int | None = None,
    icmp_type: int | None = None,
    icmp_code: int | None = None,
) -> dict[str, Any]:
    """The `trace-static` message of a trace across `route`: the hosts' flow (source and
    destination traversals, request and reply), the verdict and words of the whole path, and
    its three layers each way."""
    assert source.host is not None and destination.host is not None  # start_trace checked
    path = trace_path(
        host_target(source.host.name),
        host_target(destination.host.name),
        route.state,
        str(source.pk),
        str(destination.pk),
        protocol=protocol,
        sport=40000 if dport is not None else None,
        dport=dport,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        family=family,
        reply=True,
    )
    flow = path.as_flow()
    message = static_message(trace_id, flow)
    return {
        **message,
        # A reject is a drop to whoever waits for the packet; the path keeps the difference.
        "verdict": overall_verdict(flow),
        "explanation": path.words,
        "reason": _reason(path, str(message.get("reason", ""))),
        # The network node whose router namespace forwards it: the page orders the kernel's
        # packets along the path with it.
        "path": {**path.as_dict(), "router_host": route.host},
    }
