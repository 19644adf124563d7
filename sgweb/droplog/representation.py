"""Stored flows as the API's and the live protocol's dictionaries (the same shape for both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sgweb.droplog.models import DropFlow

PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 136: "udplite"}
PROTOCOL_NUMBERS = {name: number for number, name in PROTOCOL_NAMES.items()}
PROTOCOL_NUMBERS["icmpv6"] = 58


def protocol_name(number: int) -> str:
    return PROTOCOL_NAMES.get(number, str(number))


def _unix(moment: datetime) -> float:
    return moment.timestamp()


def flow_to_dict(row: DropFlow) -> dict[str, Any]:
    return {
        "id": row.key,
        "port_id": str(row.port_id),
        "port_name": row.port.name,
        "project_id": row.project_id.hex,
        "host": row.host,
        "direction": row.direction,
        "event": row.event,
        "ethertype": row.ethertype,
        "protocol": protocol_name(row.protocol),
        "protocol_number": row.protocol,
        "src": row.src,
        "dst": row.dst,
        "src_port": row.src_port,
        "dst_port": row.dst_port,
        "icmp_type": row.icmp_type,
        "icmp_code": row.icmp_code,
        "first_seen": _unix(row.first_seen),
        "last_seen": _unix(row.last_seen),
        "count": row.count,
        "ct_state": row.ct_state or None,
        "decided_by": row.decided_by or None,
        "explanation": row.explanation,
        "verdict": row.verdict or None,
        "reason": row.reason or None,
        "rule_id": row.rule_id or None,
        "nearest_rule_id": row.nearest_rule_id or None,
        "differs": list(row.differs),
        "security_group_ids": list(row.group_ids),
    }
