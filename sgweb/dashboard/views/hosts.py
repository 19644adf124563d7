"""Compute hosts and their agents' state: alive, revision desired vs applied, last apply."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404

from sgweb.dashboard.access import scope, sees_everything
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.presentation import HOST_STATES, host_status, host_status_filter
from sgweb.dashboard.shell import render_page
from sgweb.networks.models import Host, Port

HOST_SORTS = {
    "name": "name",
    "ports": "port_count",
    "applied": "applied_revision",
    "last_apply": "last_apply_at",
}
STATUS_FILTERS = HOST_STATES


@login_required
def host_list(request: HttpRequest) -> HttpResponse:
    query = search_term(request)
    hosts = Host.objects.all()
    if query:
        hosts = hosts.filter(Q(name__icontains=query) | Q(description__icontains=query))
    # Members count only their own ports on a host; the host itself is shared infrastructure.
    port_filter = (
        Q() if sees_everything(request.user) else Q(ports__project__memberships__user=request.user)
    )
    hosts = hosts.annotate(port_count=Count("ports", filter=port_filter, distinct=True))
    status = request.GET.get("status", "")
    if status in STATUS_FILTERS:
        hosts = hosts.filter(host_status_filter(status))
    hosts, _ = sorted_by(request, hosts, HOST_SORTS, "name")
    listing = paginate(request, hosts)
    rows = [(host, host_status(host)) for host in listing.page.object_list]
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
        scope(Port.objects.filter(host=host), request.user)
        .select_related("project", "network")
        .prefetch_related("fixed_ips")
    )
    listing = paginate(request, ports.order_by("name", "id"))
    return render_page(
        request,
        "dashboard/hosts/detail.html",
        {"host": host, "status": host_status(host), "listing": listing},
        section="hosts",
    )
