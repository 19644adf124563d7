"""The version document, the v2.0 resource index and the extension list."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.errors import json_error
from sgweb.api.query import filter_rows, parse_list_query, select_fields

# (alias, name, description): the Neutron extensions whose behaviour we implement.
EXTENSIONS = (
    ("security-group", "security-group", "The security groups extension."),
    ("port-security", "Port Security", "Provides port security."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application."),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs."),
    ("standard-attr-revisions", "Resource revision numbers", "Revision number per resource."),
    ("standard-attr-timestamp", "Resource timestamps", "created_at and updated_at fields."),
    ("standard-attr-description", "standard-attr-description", "description on resources."),
    ("project-id", "project_id field enabled", "project_id beside tenant_id."),
    ("quotas", "Quota management support", "Expose functions for quotas management."),
    ("quota_details", "Quota details management support", "Quota usage details."),
    ("stateful-security-group", "Stateful security group", "Stateless security groups."),
    ("logging", "Logging API Extension", "Packet logs of security groups (/v2.0/log/logs)."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("fields", "Fields", "fields= on show and list."),
    ("filter-validation", "Filter parameters validation", "Filter parameters are validated."),
    ("security-groups-shared-filtering", "Security group filtering on the shared field", ""),
    ("standard-attr-tag", "Tag support", "Tags on groups, rules, networks, subnets and ports."),
    ("tag-creation", "Tag creation extension", "tags in the body of a create."),
    (
        "security-groups-rules-belongs-to-default-sg",
        "Security group rule belongs to the project's default security group",
        "belongs_to_default_sg on rules.",
    ),
    ("router", "Neutron L3 Router", "Routers (routing only: no gateway, NAT or floating IPs)."),
    ("fwaas_v2", "Firewall as a Service v2", "Firewall groups, policies and rules on routers."),
    (
        "sgweb-rule-hits",
        "Rule hits",
        "Hits of rules, groups and ports over a time window: "
        "GET security-group-rules/{id}/hits, security-groups/{id}/hits, ports/{id}/hits, "
        "fwaas/firewall_rules/{id}/hits, fwaas/firewall_policies/{id}/hits.",
    ),
    (
        "sgweb-drops",
        "Drop log",
        "Logged flows of security groups, explained, newest first: GET sgweb-drops.",
    ),
)
EXTENSION_UPDATED = "2024-01-01T00:00:00-00:00"

RESOURCES = (
    ("security_group", "security_groups", "security-groups"),
    ("security_group_rule", "security_group_rules", "security-group-rules"),
    ("network", "networks", "networks"),
    ("subnet", "subnets", "subnets"),
    ("port", "ports", "ports"),
    ("quota", "quotas", "quotas"),
    ("router", "routers", "routers"),
    ("firewall_rule", "firewall_rules", "fwaas/firewall_rules"),
    ("firewall_policy", "firewall_policies", "fwaas/firewall_policies"),
    ("firewall_group", "firewall_groups", "fwaas/firewall_groups"),
)


def _root(request: HttpRequest) -> str:
    return request.build_absolute_uri("/networking/").rstrip("/")


class VersionsView(APIView):
    """GET /networking/ : what keystoneauth's version discovery reads."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="list_versions", responses={200: OpenApiTypes.OBJECT}, tags=["discovery"]
    )
    def get(self, request: Request) -> Response:
        return Response(
            {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "links": [{"href": f"{_root(request)}/v2.0/", "rel": "self"}],
                    }
                ]
            }
        )


class IndexView(APIView):
    """GET /networking/v2.0 : the resources of this API version."""

    @extend_schema(
        operation_id="list_resources", responses={200: OpenApiTypes.OBJECT}, tags=["discovery"]
    )
    def get(self, request: Request) -> Response:
        root = _root(request)
        return Response(
            {
                "resources": [
                    {
                        "name": singular,
                        "collection": plural,
                        "links": [{"href": f"{root}/v2.0/{path}", "rel": "self"}],
                    }
                    for singular, plural, path in RESOURCES
                ]
            }
        )


EXTENSION_FILTERS = ("alias", "name", "description", "updated")


def _extension(alias: str, name: str, description: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": EXTENSION_UPDATED,
        "links": [],
    }


class ExtensionsView(APIView):
    @extend_schema(
        operation_id="list_extensions", responses={200: OpenApiTypes.OBJECT}, tags=["discovery"]
    )
    def get(self, request: Request) -> Response:
        """Filters and `fields=` as every list takes them: an unknown filter is a 400."""
        query = parse_list_query(
            request.query_params,
            default_limit=settings.API_DEFAULT_PAGE_SIZE,
            max_limit=settings.API_MAX_PAGE_SIZE,
        )
        rows = [_extension(*item) for item in EXTENSIONS]
        rows = filter_rows(rows, query.filters, EXTENSION_FILTERS)
        return Response({"extensions": [select_fields(row, query.fields) for row in rows]})


class ExtensionView(APIView):
    @extend_schema(
        operation_id="show_extension", responses={200: OpenApiTypes.OBJECT}, tags=["discovery"]
    )
    def get(self, request: Request, alias: str) -> Response:
        for item in EXTENSIONS:
            if item[0] == alias:
                return Response({"extension": _extension(*item)})
        return Response(
            {
                "NeutronError": {
                    "type": "HTTPNotFound",
                    "message": f"Extension with alias {alias} does not exist",
                    "detail": "",
                }
            },
            status=404,
        )


def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    return json_error(404, "The resource could not be found.", "HTTPNotFound")
