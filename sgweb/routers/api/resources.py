"""Routers in the Neutron API, with add/remove_router_interface."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.query import Filter, as_bool, as_uuid
from sgweb.api.resource import PROJECT_FILTERS, STANDARD_SORTS, Resource, project_for_create
from sgweb.networks.api.resources import Ports, Subnets
from sgweb.networks.choices import AGENT_SILENT
from sgweb.routers import actions
from sgweb.routers.choices import RouterStatus
from sgweb.routers.models import Router
from sgweb.routers.representation import interface_to_dict, router_to_dict
from sgweb.tenancy.errors import Invalid

OBJECT_ID = OpenApiParameter("object_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _router_status(values: list[str]) -> Q:
    """The SQL twin of `Router.status`."""
    running = Q(host__isnull=False) & ~Q(host__status__in=AGENT_SILENT)
    by_status = {
        RouterStatus.DOWN: Q(admin_state_up=False),
        RouterStatus.PENDING: Q(admin_state_up=True) & ~running,
        RouterStatus.ACTIVE: Q(admin_state_up=True) & running,
    }
    condition = Q(pk__in=[])
    for value in set(values) & set(by_status):
        condition |= by_status[RouterStatus(value)]
    return condition


# Router features we do not have; a create asking for them is refused, not ignored.
UNSUPPORTED = frozenset(
    {"external_gateway_info", "distributed", "ha", "routes", "availability_zone_hints", "flavor_id"}
)


class Routers(Resource[Router]):
    singular = "router"
    plural = "routers"
    path = "routers"
    not_found_type = "RouterNotFound"
    not_found_message = "Router {id} could not be found"
    filters = {
        **PROJECT_FILTERS,
        "id": Filter("id", as_uuid),
        "name": Filter("name"),
        "admin_state_up": Filter("admin_state_up", as_bool),
        "status": Filter("", build=_router_status),
    }
    sortable = STANDARD_SORTS
    tag_model = Router
    create_fields = {
        "name": "name",
        "description": "description",
        "admin_state_up": "admin_state_up",
    }
    update_fields = create_fields
    read_only = Resource.read_only | {
        "status",
        "external_gateway_info",
        "routes",
        "distributed",
        "ha",
        "flavor_id",
        "availability_zones",
        "availability_zone_hints",
    }

    def queryset(self, request: Request) -> QuerySet[Router]:
        return self.scoped(request, Router.objects.all()).select_related("host")

    def to_dict(self, obj: Router) -> dict[str, Any]:
        return router_to_dict(obj)

    def create(self, request: Request, body: dict[str, Any]) -> Router:
        project = project_for_create(request, body)
        fields = {k: v for k, v in body.items() if k not in ("project_id", "tenant_id")}
        # Neutron's defaults a client may spell out (routing only: no gateway, DVR or HA).
        for key in ("external_gateway_info", "distributed", "ha"):
            if fields.get(key) in (None, False, {}):
                fields.pop(key, None)
        if fields.get("availability_zone_hints") == []:
            fields.pop("availability_zone_hints")
        unsupported = sorted(set(fields) & UNSUPPORTED)
        if unsupported:
            raise Invalid(
                f"Invalid input for operation: {unsupported[0]} is not supported: routers here "
                "route between tenant subnets only (no gateway, DVR, HA or extra routes).",
                errors={key: ["Not supported."] for key in unsupported},
            )
        return actions.create_router(
            request.user, project, **self.map_fields(fields, self.create_fields)
        )

    def update(self, request: Request, obj: Router, body: dict[str, Any]) -> Router:
        values = self.map_fields(body, self.update_fields, current=self.to_dict(obj))
        return actions.update_router(request.user, obj, **values)

    def delete(self, request: Request, obj: Router) -> None:
        actions.delete_router(request.user, obj)


def _interface_body(request: Request) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict) or not data:
        raise Invalid("Resource body required")
    unknown = set(data) - {"subnet_id", "port_id"}
    if unknown:
        raise Invalid(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
    return data


class AddInterfaceView(APIView):
    """PUT /v2.0/routers/{id}/add_router_interface {"subnet_id": ...}."""

    @extend_schema(
        operation_id="add_router_interface",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        tags=["routers"],
        parameters=[OBJECT_ID],
    )
    def put(self, request: Request, object_id: str) -> Response:
        router = Routers().get_object(request, object_id)
        body = _interface_body(request)
        if body.get("port_id"):
            raise Invalid(
                "Bad router request: only subnet_id is supported: the router creates its port.",
                neutron_type="BadRequest",
            )
        if not body.get("subnet_id"):
            raise Invalid(
                "Bad router request: Either subnet_id or port_id must be specified.",
                neutron_type="BadRequest",
            )
        subnet = Subnets().get_object(request, str(body["subnet_id"]))
        with transaction.atomic():
            interface = actions.add_interface(request.user, router, subnet)
        return Response(interface_to_dict(interface))


class RemoveInterfaceView(APIView):
    """PUT /v2.0/routers/{id}/remove_router_interface {"subnet_id" or "port_id": ...}."""

    @extend_schema(
        operation_id="remove_router_interface",
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        tags=["routers"],
        parameters=[OBJECT_ID],
    )
    def put(self, request: Request, object_id: str) -> Response:
        router = Routers().get_object(request, object_id)
        body = _interface_body(request)
        subnet = (
            Subnets().get_object(request, str(body["subnet_id"])) if body.get("subnet_id") else None
        )
        port = Ports().get_object(request, str(body["port_id"])) if body.get("port_id") else None
        with transaction.atomic():
            answer = actions.remove_interface(request.user, router, subnet=subnet, port=port)
        return Response(answer)
