"""The landing page: are the hosts in step, how much is there, what changed lately."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from sgweb.audit.models import AuditEntry
from sgweb.dashboard.access import scope, sees_everything
from sgweb.dashboard.presentation import host_status
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.networks.models import Host, Network, Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule

RECENT_CHANGES = 12
HOSTS_SHOWN = 12


def audit_scope(user, project=None):  # type: ignore[no-untyped-def]
    """Audit entries the user may read: their projects' (admins and readers: all of them)."""
    entries = AuditEntry.objects.select_related("actor", "project")
    if project is not None:
        return entries.filter(project=project)
    if sees_everything(user):
        return entries
    return entries.filter(project__memberships__user=user)


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    user = request.user
    project = shell.current_project

    def in_scope(queryset, field: str = "project"):  # type: ignore[no-untyped-def]
        queryset = scope(queryset, user, field)
        return queryset.filter(**{field: project}) if project else queryset

    hosts = list(Host.objects.order_by("name")[:HOSTS_SHOWN])
    host_rows = [(host, host_status(host)) for host in hosts]
    status_counts: dict[str, int] = {}
    for host in Host.objects.only(
        "status", "last_heartbeat_at", "last_error", "desired_revision", "applied_revision"
    ):
        key = host_status(host).key
        status_counts[key] = status_counts.get(key, 0) + 1

    counts = {
        "security_groups": in_scope(SecurityGroup.objects).count(),
        "rules": in_scope(SecurityGroupRule.objects).count(),
        "ports": in_scope(Port.objects).count(),
        "networks": in_scope(Network.objects).count(),
        "hosts": sum(status_counts.values()),
    }
    recent = list(audit_scope(user, project)[:RECENT_CHANGES])
    return render_page(
        request,
        "dashboard/overview.html",
        {
            "host_rows": host_rows,
            "more_hosts": counts["hosts"] - len(hosts),
            "status_counts": status_counts,
            "unhealthy": status_counts.get("failed", 0) + status_counts.get("down", 0),
            "in_sync_count": status_counts.get("in-sync", 0),
            "counts": counts,
            "recent": recent,
        },
        section="overview",
        shell=shell,
    )
