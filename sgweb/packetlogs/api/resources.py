"""Packet logs in the Neutron logging API v2.0 (/v2.0/log/logs)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.query import Filter, as_bool, as_uuid
from sgweb.api.resource import PROJECT_FILTERS, STANDARD_SORTS, Resource, project_for_create
from sgweb.networks.api.resources import Ports
from sgweb.packetlogs import actions
from sgweb.packetlogs.choices import SECURITY_GROUP
from sgweb.packetlogs.models import Log
from sgweb.packetlogs.representation import log_to_dict
from sgweb.security.api.resources import SecurityGroups
from sgweb.tenancy.access import member_project_ids


class Logs(Resource[Log]):
    singular = "log"
    plural = "logs"
    path = "log/logs"
    not_found_type = "LogResourceNotFound"
    not_found_message = "Log resource {id} could not be found."
    filters = {
        **PROJECT_FILTERS,
        "id": Filter("id", as_uuid),
        "name": Filter("name"),
        "event": Filter("event"),
        "enabled": Filter("enabled", as_bool),
        "resource_type": Filter("resource_type"),
        "resource_id": Filter("resource_id", as_uuid),
        "target_id": Filter("target_id", as_uuid),
    }
    sortable = STANDARD_SORTS
    create_fields = {
        "name": "name",
        "description": "description",
        "resource_type": "resource_type",
        "event": "event",
        "enabled": "enabled",
    }
    update_fields = {"name": "name", "description": "description", "enabled": "enabled"}
    read_only = Resource.read_only | {"resource_type", "resource_id", "target_id", "event"}

    def queryset(self, request: Request) -> QuerySet[Log]:
        return self.scoped(request, Log.objects.all())

    def to_dict(self, obj: Log) -> dict[str, Any]:
        return log_to_dict(obj)

    def create(self, request: Request, body: dict[str, Any]) -> Log:
        fields = {
            key: value
            for key, value in body.items()
            if key not in ("resource_id", "target_id", "project_id", "tenant_id")
        }
        values = self.map_fields(fields, self.create_fields)
        # A group or port the caller cannot see is "not found", as everywhere else.
        if body.get("resource_id"):
            values["resource"] = SecurityGroups().get_object(request, str(body["resource_id"]))
        if body.get("target_id"):
            values["target"] = Ports().get_object(request, str(body["target_id"]))
        project = None
        named = body.get("project_id") or body.get("tenant_id")
        if not named and len(member_project_ids(request.user)) != 1:
            project = actions.owner_project(values.get("resource"), values.get("target"))
        if project is None:
            project = project_for_create(request, body)
        return actions.create_log(request.user, project, **values)

    def update(self, request: Request, obj: Log, body: dict[str, Any]) -> Log:
        values = self.map_fields(body, self.update_fields, current=self.to_dict(obj))
        return actions.update_log(request.user, obj, **values)

    def delete(self, request: Request, obj: Log) -> None:
        actions.delete_log(request.user, obj)


class LoggableResourcesView(APIView):
    """What can be logged: security groups only (Neutron's `loggable_resources`)."""

    @extend_schema(operation_id="list_loggable_resources", responses={200: dict})
    def get(self, request: Request) -> Response:
        return Response({"loggable_resources": [{"type": SECURITY_GROUP}]})
