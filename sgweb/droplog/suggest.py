"""What a drop's "Trace this" and "Allow this" open: the trace form and the narrowest rule.

The narrowest rule that would allow a dropped flow: the port's direction and family, one
protocol, one destination port (TCP/UDP/SCTP) or the ICMP type and code, and one remote: the
remote group a port of the same project at that address belongs to, else that one address
(/32 or /128). It goes into the group whose rule came nearest (else the port's first group).
It is only ever a pre-filled form: nothing is applied without the admin's click.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sgweb.droplog.models import DropFlow
from sgweb.droplog.representation import protocol_name
from sgweb.networks.models import FixedIP, PortSecurityGroup
from sgweb.security.models import SecurityGroupRule

PORTED = {6, 17, 132, 136}  # tcp, udp, sctp, udplite
ICMP = {1, 58}


@dataclass(frozen=True, slots=True)
class SuggestedRule:
    security_group_id: str
    direction: str
    ethertype: str
    protocol: str
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def form_query(self) -> dict[str, str]:
        """The group page's rule-form fields (`?direction=...`)."""
        query = {
            "direction": self.direction,
            "ethertype": self.ethertype,
            "protocol": self.protocol,
            "port_range_min": "" if self.port_range_min is None else str(self.port_range_min),
            "port_range_max": "" if self.port_range_max is None else str(self.port_range_max),
            "remote_kind": "group" if self.remote_group_id else "cidr",
        }
        if self.remote_group_id:
            query["remote_group_id"] = self.remote_group_id
        else:
            query["remote_ip_prefix"] = self.remote_ip_prefix or ""
        return {key: value for key, value in query.items() if value != ""}


def remote_address(flow: DropFlow) -> str:
    """The other end: the source of what came in, the destination of what went out."""
    return flow.src if flow.direction == "ingress" else flow.dst


class _Context:
    """What the suggestions of many flows need, read in three queries for all of them."""

    def __init__(self, flows: Sequence[DropFlow]) -> None:
        drops = [flow for flow in flows if flow.event == "DROP"]
        wanted = {(flow.project_id, remote_address(flow)) for flow in drops}
        holders: dict[tuple[Any, str], list[Any]] = defaultdict(list)
        for port_id, project_id, address in FixedIP.objects.filter(
            ip_address__in={address for _project, address in wanted}
        ).values_list("port_id", "port__project_id", "ip_address"):
            if (project_id, address) in wanted:
                holders[(project_id, address)].append(port_id)
        ports = {flow.port_id for flow in drops} | {pid for ids in holders.values() for pid in ids}
        self.groups: dict[Any, list[str]] = defaultdict(list)
        for port_id, group_id in (
            PortSecurityGroup.objects.filter(port_id__in=ports)
            .order_by("port_id", "position", "id")
            .values_list("port_id", "security_group_id")
        ):
            self.groups[port_id].append(str(group_id))
        self.holders = {key: sorted(ids, key=str) for key, ids in holders.items()}
        near = {flow.nearest_rule_id for flow in drops if flow.nearest_rule_id}
        self.rule_groups = {
            str(rule_id): str(group_id)
            for rule_id, group_id in SecurityGroupRule.objects.filter(pk__in=near).values_list(
                "pk", "security_group_id"
            )
        }

    def remote_group(self, flow: DropFlow, address: str) -> str | None:
        for port_id in self.holders.get((flow.project_id, address), ()):
            if self.groups.get(port_id):
                return self.groups[port_id][0]
        return None

    def target_group(self, flow: DropFlow) -> str | None:
        own = self.groups.get(flow.port_id, [])
        if not own:
            return None
        near = self.rule_groups.get(flow.nearest_rule_id)
        return near if near in own else own[0]


def suggested_rules(flows: Sequence[DropFlow]) -> dict[str, SuggestedRule | None]:
    """Flow key -> the narrowest rule allowing it, or None (not a drop, or the port has no
    group)."""
    context = _Context(flows)
    return {flow.key: _suggest(flow, context) for flow in flows}


def suggested_rule(flow: DropFlow) -> SuggestedRule | None:
    return suggested_rules([flow])[flow.key]


def _suggest(flow: DropFlow, context: _Context) -> SuggestedRule | None:
    if flow.event != "DROP":
        return None
    group = context.target_group(flow)
    if group is None:
        return None
    address = remote_address(flow)
    remote_group = context.remote_group(flow, address)
    prefix = None
    if remote_group is None:
        bits = ipaddress.ip_address(address).max_prefixlen
        prefix = f"{address}/{bits}"
    low = high = None
    if flow.protocol in PORTED:
        low = high = flow.dst_port
    elif flow.protocol in ICMP and flow.icmp_type is not None:
        low, high = flow.icmp_type, flow.icmp_code
    return SuggestedRule(
        security_group_id=group,
        direction=flow.direction,
        ethertype=flow.ethertype,
        protocol=protocol_name(flow.protocol),
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=prefix,
        remote_group_id=remote_group,
    )


def trace_query(flow: DropFlow) -> dict[str, str]:
    """The trace form's fields (`/traces/new?...`): the port as its end, the address as the
    other, the protocol and destination port or ICMP type and code."""
    port = f"port:{flow.port_id}"
    source, destination = (flow.src, port) if flow.direction == "ingress" else (port, flow.dst)
    query = {"source": source, "destination": destination, "protocol": protocol_name(flow.protocol)}
    if flow.dst_port is not None:
        query["port"] = str(flow.dst_port)
    if flow.icmp_type is not None:
        query["icmp_type"] = str(flow.icmp_type)
    if flow.icmp_code is not None:
        query["icmp_code"] = str(flow.icmp_code)
    return query
