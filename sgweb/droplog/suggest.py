"""What a drop's "Trace this" and "Allow this" open: the trace form and the narrowest rule.

The narrowest rule that would allow a dropped flow: the port's direction and family, one
protocol, one destination port (TCP/UDP/SCTP) or the ICMP type and code, and one remote: the
remote group a port of the same project at that address belongs to, else that one address
(/32 or /128). It goes into the group whose rule came nearest (else the port's first group).
It is only ever a pre-filled form: nothing is applied without the admin's click.
"""

from __future__ import annotations

import ipaddress
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


def _remote_group(flow: DropFlow, address: str) -> str | None:
    ports = FixedIP.objects.filter(
        ip_address=address, port__project_id=flow.project_id
    ).values_list("port_id", flat=True)
    link = (
        PortSecurityGroup.objects.filter(port_id__in=list(ports[:5]))
        .order_by("port_id", "position", "id")
        .values_list("security_group_id", flat=True)
        .first()
    )
    return str(link) if link else None


def _target_group(flow: DropFlow) -> str | None:
    own = [
        str(gid)
        for gid in PortSecurityGroup.objects.filter(port_id=flow.port_id)
        .order_by("position", "id")
        .values_list("security_group_id", flat=True)
    ]
    if not own:
        return None
    if flow.nearest_rule_id:
        near = (
            SecurityGroupRule.objects.filter(pk=flow.nearest_rule_id)
            .values_list("security_group_id", flat=True)
            .first()
        )
        if near is not None and str(near) in own:
            return str(near)
    return own[0]


def suggested_rule(flow: DropFlow) -> SuggestedRule | None:
    """The narrowest rule allowing the flow, or None (not a drop, or the port has no group)."""
    if flow.event != "DROP":
        return None
    group = _target_group(flow)
    if group is None:
        return None
    address = remote_address(flow)
    remote_group = _remote_group(flow, address)
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
