"""Packet logs as Neutron's API dictionaries (also the audit snapshots)."""

from __future__ import annotations

from typing import Any

from sgweb.packetlogs.models import Log
from sgweb.tenancy.representation import standard_fields


def log_to_dict(log: Log) -> dict[str, Any]:
    return {
        "id": str(log.id),
        "name": log.name,
        "description": log.description,
        "resource_type": log.resource_type,
        "resource_id": str(log.resource_id) if log.resource_id else None,
        "target_id": str(log.target_id) if log.target_id else None,
        "event": log.event,
        "enabled": log.enabled,
        **standard_fields(log),
    }
