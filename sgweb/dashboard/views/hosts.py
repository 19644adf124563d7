"""Compute hosts and their agents' state: alive, revision desired vs applied, last apply."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard import usage
from sgweb.dashboard.guards import raise_for_access
from sgweb.dashboard.hoststate import classify_all, statuses
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.presentation import HOST_STATES
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import done, refused_message
from sgweb.hostsync import actions
from sgweb.hostsync.models import HostEvent, PublishIntent
from sgweb.networks.models import Host, Port
from sgweb.tenancy.access import is_admin, scope, sees_all_projects
from sgweb.tenancy.errors import ActionError
from sgweb.wire.sync import host_queue

HOST_SORTS = {
    "name": "name",
    "ports": "port_count",
    "applied": "applied_revision",
    "last_apply": "last_apply_at",
}
STATUS_FILTERS = HOST_STATES
EVENTS_SHOWN = 30


@login_required
def host_list(request: HttpRequest) -> HttpResponse:
    query = search_term(request)
    hosts = Host.objects.all()
    if query:
        hosts = hosts.filter(Q(name__icontains=query) | Q(description__icontains=query))
    # Members count only their own ports on a host; the host itself is shared infrastructure.
    port_filter = (
        Q()
        if sees_all_projects(request.user)
        else Q(ports__project__memberships__user=request.user)
    )
    hosts = hosts.annotate(port_count=Count("ports", filter=port_filter, distinct=True))
    status = request.GET.get("status", "")
    if status in STATUS_FILTERS:
        # Liveness is in Redis, not in the database: classify every host, then filter by name.
        hosts = hosts.filter(name__in=classify_all()[status])
    hosts, _ = sorted_by(request, hosts, HOST_SORTS, "name")
    listing = paginate(request, hosts)
    page_hosts = list(listing.page.object_list)
    rows = list(zip(page_hosts, statuses(page_hosts), strict=True))
    return render_page(
        request,
        "dashboard/hosts/list.html",
        {"listing": listing, "rows": rows, "status": status, "statuses": STATUS_FILTERS},
        section="hosts",
    )


@login_required
def host_detail(request: HttpRequest, name: str) -> HttpResponse:
    host = get_object_or_404(Host, name=name)
    ports = (
        scope(request.user, Port.objects.filter(host=host))
        .select_related("project", "network")
        .prefetch_related("fixed_ips")
    )
    listing = paginate(request, ports.order_by("name", "id"))
    window = usage.window_key(request)
    # Host-wide counters sum every project's traffic: for those who see every project.
    accounting = usage.host_usage(host, window) if sees_all_projects(request.user) else None
    return render_page(
        request,
        "dashboard/hosts/detail.html",
        {
            "host": host,
            "status": statuses([host])[0],
            "listing": listing,
            "accounting": accounting,
            "window": window,
            "window_choices": usage.WINDOW_CHOICES,
            "events": list(
                HostEvent.objects.filter(host=host).order_by("-at", "-id")[:EVENTS_SHOWN]
            ),
            "queue": host_queue(host.name),
            "pending_publishes": PublishIntent.objects.filter(host_name=host.name).count(),
            "is_admin": is_admin(request.user),
            "bound_ports": Port.objects.filter(host=host).count(),
        },
        section="hosts",
    )


@login_required
@require_POST
def host_decommission(request: HttpRequest, name: str) -> HttpResponse:
    """Remove a gone host (admins); with `force`, the ports still bound there are unbound."""
    try:
        unbound = actions.decommission_host(
            request.user, name, force=request.POST.get("force") == "1"
        )
    except ActionError as error:
        raise_for_access(error)
        return refused_message(
            request, reverse("dashboard:host", args=[name]), error.message, error.status_code
        )
    note = f" {len(unbound)} port(s) unbound." if unbound else ""
    return done(request, reverse("dashboard:hosts"), f"Host {name} decommissioned.{note}")
