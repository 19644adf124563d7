"""Neutron's quota API for our two quotas, both of security groups: /v2.0/quotas/{project_id}.

The quotas themselves belong to the project (`sgweb.tenancy`); the details' "used" counts come
from this app and from the apps above it (`tenancy.hooks.project_hooks.usage`)."""

from __future__ import annotations

import uuid
from typing import Any, TypedDict

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.query import Filter, apply_filters, as_uuid, parse_list_query, select_fields
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy import actions
from sgweb.tenancy.access import can_see_project, visible_projects
from sgweb.tenancy.errors import Invalid, NotFound
from sgweb.tenancy.hooks import project_hooks
from sgweb.tenancy.models import Project, Quota

# Resources we do not limit are reported as unlimited, as Neutron does for -1.
UNLIMITED = ("network", "subnet", "port", "floatingip", "rbac_policy")
# Limited for every project alike, by settings (QUOTA_ROUTERS, QUOTA_FIREWALL_*).
FIXED = {
    "router": "QUOTA_ROUTERS",
    "firewall_rule": "QUOTA_FIREWALL_RULES",
    "firewall_policy": "QUOTA_FIREWALL_POLICIES",
    "firewall_group": "QUOTA_FIREWALL_GROUPS",
}


PROJECT_PARAMETER = OpenApiParameter(
    "project_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="32 hex digits"
)


class _QuotaDocs(TypedDict):
    responses: dict[int, OpenApiTypes]
    tags: list[str]


QUOTA_DOCS: _QuotaDocs = {"responses": {200: OpenApiTypes.OBJECT}, "tags": ["quotas"]}


def quota_dict(quota: Quota) -> dict[str, int]:
    return {
        "security_group": quota.security_groups,
        "security_group_rule": quota.security_group_rules,
        **dict.fromkeys(UNLIMITED, -1),
        **{resource: getattr(settings, name) for resource, name in FIXED.items()},
    }


def _project(request: Request, project_id: str) -> Project:
    try:
        key = uuid.UUID(project_id)
    except ValueError:
        raise NotFound(f"Project {project_id} could not be found.") from None
    project = Project.objects.filter(pk=key).first()
    if project is None or not can_see_project(request.user, project.id):
        raise NotFound(f"Project {project_id} could not be found.")
    return project


QUOTA_FILTERS = {
    "project_id": Filter("project_id", as_uuid),
    "tenant_id": Filter("project_id", as_uuid),
}


class QuotaListView(APIView):
    @extend_schema(operation_id="list_quotas", **QUOTA_DOCS)
    def get(self, request: Request) -> Response:
        """Filters (`project_id` / `tenant_id`) and `fields=` as every list takes them: an
        unknown filter is a 400, not every quota."""
        query = parse_list_query(
            request.query_params,
            default_limit=settings.API_DEFAULT_PAGE_SIZE,
            max_limit=settings.API_MAX_PAGE_SIZE,
        )
        visible = Quota.objects.filter(project__in=visible_projects(request.user))
        quotas = apply_filters(visible, query.filters, QUOTA_FILTERS)
        rows = (
            {"project_id": q.project_id.hex, "tenant_id": q.project_id.hex, **quota_dict(q)}
            for q in quotas.order_by("project_id")
        )
        return Response({"quotas": [select_fields(row, query.fields) for row in rows]})


class QuotaView(APIView):
    @extend_schema(operation_id="show_quota", parameters=[PROJECT_PARAMETER], **QUOTA_DOCS)
    def get(self, request: Request, project_id: str) -> Response:
        project = _project(request, project_id)
        return Response({"quota": quota_dict(actions.quota_of(project))})

    @extend_schema(
        operation_id="update_quota",
        parameters=[PROJECT_PARAMETER],
        request=OpenApiTypes.OBJECT,
        **QUOTA_DOCS,
    )
    def put(self, request: Request, project_id: str) -> Response:
        project = _project(request, project_id)
        body = request.data.get("quota") if isinstance(request.data, dict) else None
        if not isinstance(body, dict):
            raise Invalid("Unable to find 'quota' in request body")
        unknown = set(body) - {"security_group", "security_group_rule", *UNLIMITED, *FIXED}
        if unknown:
            raise Invalid(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        quota = actions.set_quota(
            request.user,
            project,
            security_groups=body.get("security_group"),
            security_group_rules=body.get("security_group_rule"),
        )
        return Response({"quota": quota_dict(quota)})

    @extend_schema(operation_id="reset_quota", parameters=[PROJECT_PARAMETER], **QUOTA_DOCS)
    def delete(self, request: Request, project_id: str) -> HttpResponse:
        """Back to the defaults."""

        project = _project(request, project_id)
        actions.set_quota(
            request.user,
            project,
            security_groups=settings.QUOTA_SECURITY_GROUPS,
            security_group_rules=settings.QUOTA_SECURITY_GROUP_RULES,
        )
        return HttpResponse(status=204)


class QuotaDefaultView(APIView):
    @extend_schema(operation_id="show_quota_default", parameters=[PROJECT_PARAMETER], **QUOTA_DOCS)
    def get(self, request: Request, project_id: str) -> Response:
        """What the project's quotas are when nobody set them (and after a reset)."""
        _project(request, project_id)
        defaults = Quota(
            security_groups=settings.QUOTA_SECURITY_GROUPS,
            security_group_rules=settings.QUOTA_SECURITY_GROUP_RULES,
        )
        return Response({"quota": quota_dict(defaults)})


class QuotaDetailsView(APIView):
    @extend_schema(operation_id="show_quota_details", parameters=[PROJECT_PARAMETER], **QUOTA_DOCS)
    def get(self, request: Request, project_id: str) -> Response:
        project = _project(request, project_id)
        quota = actions.quota_of(project)
        used = {
            "security_group": SecurityGroup.objects.filter(project=project).count(),
            "security_group_rule": SecurityGroupRule.objects.filter(project=project).count(),
        }
        for usage in project_hooks.usage:  # the apps above this one count their own
            used.update(usage(project))
        details: dict[str, Any] = {
            name: {"limit": limit, "used": used.get(name, 0), "reserved": 0}
            for name, limit in quota_dict(quota).items()
        }
        return Response({"quota": details})
