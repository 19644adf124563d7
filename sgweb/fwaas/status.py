"""Firewall groups' status from the network nodes' apply reports (issue 16).

`record_router_apply` listens to the agents' router apply reports (hostsync installs it in
`router_apply_listeners`, since hostsync sits above this app) and keeps each node's newest one;
`representation.group_status` shows ERROR for a group on a router whose node refused its state.
An older report (reports can arrive out of order) never overwrites a newer one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from sgweb.fwaas.models import NodeRouterApply


def record_router_apply(report: dict[str, Any]) -> None:
    host = str(report.get("host") or "")
    if not host:
        return
    revision = int(report.get("revision") or 0)
    ok = bool(report.get("ok"))
    error = "" if ok else str(report.get("error") or "apply failed")[:2000]
    with transaction.atomic():
        known = NodeRouterApply.objects.select_for_update().filter(host_name=host).first()
        if known is None:
            NodeRouterApply.objects.create(host_name=host, revision=revision, ok=ok, error=error)
        elif revision >= known.revision:
            known.revision, known.ok, known.error = revision, ok, error
            known.save()


def failed_nodes(names: set[str]) -> set[str]:
    """Of these network nodes, those whose newest router apply failed."""
    return set(
        NodeRouterApply.objects.filter(host_name__in=names, ok=False).values_list(
            "host_name", flat=True
        )
    )
