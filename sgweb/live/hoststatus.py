"""Which hosts a user may watch, and their `host-status` messages (database + heartbeats)."""

from __future__ import annotations

from typing import Any, overload

from sgweb.fwaas.models import NodeRouterApply
from sgweb.hostsync.status import host_liveness
from sgweb.live import events
from sgweb.networks.models import Host, Port
from sgweb.routers.models import Router
from sgweb.tenancy.access import member_project_ids, sees_all_projects


@overload
def visible_host_names(user: Any, hosts: list[Any]) -> set[str]: ...
@overload
def visible_host_names(user: Any, hosts: None) -> set[str] | None: ...
def visible_host_names(user: Any, hosts: list[Any] | None) -> set[str] | None:
    """The hosts a user may watch: every one for admins and readers (None: no filter), else
    those holding a port of the user's projects, and the network nodes running their routers
    (a firewall change made on a page is followed to its node)."""
    if sees_all_projects(user):
        return None if hosts is None else {host.name for host in hosts}
    projects = member_project_ids(user)
    ports = Port.objects.filter(project_id__in=projects, host__isnull=False)
    routers = Router.objects.filter(project_id__in=projects, host__isnull=False)
    if hosts is not None:
        ports = ports.filter(host__in=hosts)
        routers = routers.filter(host__in=hosts)
    names = set(ports.values_list("host__name", flat=True).distinct())
    return names | set(routers.values_list("host__name", flat=True).distinct())


def router_applies(names: set[str] | None) -> list[dict[str, Any]]:
    """The network nodes' last router applies as `router-apply` messages (None: every node), for
    a page that follows a change and opens its socket after the node may have applied it."""
    query = NodeRouterApply.objects.all()
    if names is not None:
        query = query.filter(host_name__in=names)
    return [
        events.router_apply_message(
            {"host": last.host_name, "revision": last.revision, "ok": last.ok,
             "error": last.error, "kernel_applied_at": last.updated_at.timestamp()}
        )
        for last in query.order_by("host_name")
    ]  # fmt: skip


def host_statuses(names: list[str] | None) -> dict[str, dict[str, Any]]:
    """`host-status` messages from the database and the agents' heartbeats (one MGET)."""
    query = Host.objects.all() if names is None else Host.objects.filter(name__in=names)
    hosts = list(query.order_by("name"))
    try:
        live = host_liveness([host.name for host in hosts])
        alive = {name: entry.alive for name, entry in live.items()}
    except Exception:
        alive = {}
    result = {}
    for host in hosts:
        up = alive.get(host.name, False)
        # As the pages say it (dashboard.presentation.host_status): a host no agent ever
        # reported for has "no agent", it is not down.
        never = host.last_apply_at is None and not host.applied_revision
        silent = "unknown" if never and host.last_heartbeat_at is None else "down"
        result[host.name] = events.host_status_message(
            {
                "host": host.name,
                "status": host.status if up else silent,
                "desired_revision": host.desired_revision,
                "applied_revision": host.applied_revision,
                "last_apply_at": host.last_apply_at.timestamp() if host.last_apply_at else None,
                "last_apply_duration_ms": host.last_apply_duration_ms,
                "last_error": host.last_error,
            },
            up,
        )
    return result
