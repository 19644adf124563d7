"""The landing page: are the hosts in step, how much is there, what changed lately."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from sgweb.dashboard.hoststate import needing_attention_first
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.views.audit import readable_entries
from sgweb.droplog.query import top_dropping_ports
from sgweb.networks.models import Network, Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.access import scope

RECENT_CHANGES = 12
HOSTS_SHOWN = 12


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    user = request.user
    project = shell.current_project

    def in_scope(queryset, field: str = "project"):  # type: ignore[no-untyped-def]
        queryset = scope(user, queryset, field)
        return queryset.filter(**{field: project}) if project else queryset

    host_rows, status_counts = needing_attention_first(HOSTS_SHOWN)

    counts = {
        "security_groups": in_scope(SecurityGroup.objects).count(),
        "rules": in_scope(SecurityGroupRule.objects).count(),
        "ports": in_scope(Port.objects).count(),
        "networks": in_scope(Network.objects).count(),
        "hosts": sum(status_counts.values()),
    }
    entries = readable_entries(user)
    if project is not None:
        entries = entries.filter(project=project)
    recent = list(entries.order_by("-at")[:RECENT_CHANGES])
    dropping = top_dropping_ports(user, project_id=project.pk if project else None)
    return render_page(
        request,
        "dashboard/overview.html",
        {
            "host_rows": host_rows,
            "more_hosts": counts["hosts"] - len(host_rows),
            "status_counts": status_counts,
            "unhealthy": status_counts.get("failed", 0) + status_counts.get("down", 0),
            "in_sync_count": status_counts.get("in-sync", 0),
            "counts": counts,
            "recent": recent,
            "dropping": dropping,
        },
        section="overview",
        shell=shell,
    )
