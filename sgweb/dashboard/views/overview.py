"""The landing page: are the hosts in step, how much is there, what changed lately."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Case, Count, IntegerField, Value, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sgweb.dashboard.access import scope
from sgweb.dashboard.presentation import HOST_STATES, host_status, host_status_filter
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.views.audit import readable_entries
from sgweb.networks.models import Host, Network, Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule

RECENT_CHANGES = 12
HOSTS_SHOWN = 12


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    user = request.user
    project = shell.current_project

    def in_scope(queryset, field: str = "project"):  # type: ignore[no-untyped-def]
        queryset = scope(queryset, user, field)
        return queryset.filter(**{field: project}) if project else queryset

    now = timezone.now()
    # Hosts that need attention first, so a failed host is never below the fold.
    attention = Case(
        When(host_status_filter("failed", now), then=Value(0)),
        When(host_status_filter("down", now), then=Value(1)),
        When(host_status_filter("syncing", now), then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    hosts = list(
        Host.objects.annotate(attention=attention).order_by("attention", "name")[:HOSTS_SHOWN]
    )
    host_rows = [(host, host_status(host, now)) for host in hosts]
    # One aggregate, whatever the number of hosts; the filters mirror `host_status`.
    totals = Host.objects.aggregate(
        **{
            key.replace("-", "_"): Count("pk", filter=host_status_filter(key, now))
            for key in HOST_STATES
        }
    )
    status_counts = {
        key: totals[key.replace("-", "_")] for key in HOST_STATES if totals[key.replace("-", "_")]
    }

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
