"""Which events each port logs, from the enabled logs that cover it (for the desired state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import Q

from sgweb.networks.models import Port
from sgweb.packetlogs.choices import LogEvent
from sgweb.packetlogs.models import Log


def port_log_events(ports: Sequence[Port], groups_of: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """port id -> ALL / ACCEPT / DROP for the ports some enabled log covers.

    `groups_of` maps each port id to its group ids (already loaded by the caller). One query.
    A log covers a port when it targets it (and, with a resource, the port is in that group),
    when it names one of the port's groups and no target, or when it names neither (every
    port of its project). Several logs on a port add up (ACCEPT + DROP = ALL).
    """
    if not ports:
        return {}
    port_ids = [port.id for port in ports]
    group_ids = {gid for ids in groups_of.values() for gid in ids}
    projects = {port.project_id for port in ports}
    logs = Log.objects.filter(enabled=True).filter(
        Q(target_id__in=port_ids)
        | Q(target__isnull=True, resource_id__in=group_ids)
        | Q(target__isnull=True, resource__isnull=True, project_id__in=projects)
    )
    events: dict[str, set[str]] = {}
    for log in logs.values("target_id", "resource_id", "project_id", "event"):
        for port in ports:
            if _covers(log, port, groups_of.get(str(port.id), ())):
                events.setdefault(str(port.id), set()).add(log["event"])
    return {port_id: _combined(found) for port_id, found in events.items()}


def _covers(log: Mapping[str, Any], port: Port, group_ids: tuple[str, ...]) -> bool:
    resource = str(log["resource_id"]) if log["resource_id"] else None
    if log["target_id"] is not None:
        return bool(log["target_id"] == port.id and (resource is None or resource in group_ids))
    if resource is not None:
        return resource in group_ids
    return bool(log["project_id"] == port.project_id)


def _combined(events: set[str]) -> str:
    if LogEvent.ALL in events or {LogEvent.ACCEPT, LogEvent.DROP} <= events:
        return LogEvent.ALL
    return next(iter(events))
