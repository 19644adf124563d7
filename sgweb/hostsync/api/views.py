"""`/v2.0/sgweb-hosts`: the compute hosts, their sync state, and decommissioning (admins only).

Not a Neutron resource (Neutron's agents API is another shape), hence the `sgweb-` prefix.
A host is addressed by its name, percent-encoded in the path (names may hold spaces, slashes,
unicode). `DELETE ...?force=true` also unbinds the ports still bound there.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.hostsync import actions
from sgweb.hostsync.models import PublishIntent
from sgweb.hostsync.status import Liveness, host_liveness
from sgweb.networks.models import Host
from sgweb.tenancy.access import require_admin
from sgweb.wire import sync as protocol

DOCS: dict[str, Any] = {"responses": {200: OpenApiTypes.OBJECT}, "tags": ["sgweb-hosts"]}
NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH)
FORCE = OpenApiParameter("force", OpenApiTypes.BOOL, description="also unbind its ports")


def host_dict(host: Host, beat: Liveness | None, pending: int) -> dict[str, Any]:
    alive = bool(beat and beat.alive)
    return {
        "name": host.name,
        "queue": protocol.host_queue(host.name),
        "status": host.status,
        "alive": alive,
        "agent_status": beat.agent_status if beat and alive else None,
        "last_heartbeat_at": host.last_heartbeat_at,
        "desired_revision": host.desired_revision,
        "applied_revision": host.applied_revision,
        "desired_digest": host.desired_digest,
        "applied_digest": (beat.applied_digest if beat and alive else None) or host.applied_digest,
        "last_apply_at": host.last_apply_at,
        "last_error": host.last_error,
        "ports": getattr(host, "port_count", None),
        "pending_publishes": pending,
        "netns": host.netns,
    }


def _pending(names: list[str]) -> dict[str, int]:
    rows = (
        PublishIntent.objects.filter(host_name__in=names)
        .values("host_name")
        .annotate(n=Count("id"))
        .values_list("host_name", "n")
    )
    return dict(rows)


def _dicts(hosts: list[Host]) -> list[dict[str, Any]]:
    names = [host.name for host in hosts]
    live = host_liveness(names)
    pending = _pending(names)
    return [host_dict(h, live.get(h.name), pending.get(h.name, 0)) for h in hosts]


def _hosts() -> Any:
    return Host.objects.annotate(port_count=Count("ports")).order_by("name")


class HostListView(APIView):
    @extend_schema(operation_id="list_sgweb_hosts", **DOCS)
    def get(self, request: Request) -> Response:
        require_admin(request.user, "Managing compute hosts")
        return Response({"sgweb_hosts": _dicts(list(_hosts()))})


class HostView(APIView):
    @extend_schema(operation_id="show_sgweb_host", parameters=[NAME], **DOCS)
    def get(self, request: Request, name: str) -> Response:
        host = actions.get_host(request.user, name)
        (data,) = _dicts([_hosts().get(pk=host.pk)])
        return Response({"sgweb_host": data})

    @extend_schema(operation_id="decommission_sgweb_host", parameters=[NAME, FORCE], **DOCS)
    def delete(self, request: Request, name: str) -> HttpResponse:
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        actions.decommission_host(request.user, name, force=force)
        return HttpResponse(status=204)
