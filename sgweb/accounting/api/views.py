"""The hits of rules, groups and ports over a time window: an extension beside the Neutron
resources (alias ``sgweb-rule-hits``), under the same /networking/v2.0 root and token auth.

* ``GET /v2.0/security-group-rules/{id}/hits``  one rule: totals, first and last hit, series
* ``GET /v2.0/security-groups/{id}/hits``       every rule of a group, the same per rule
* ``GET /v2.0/ports/{id}/hits``                 a port's accepted and dropped packets per
                                                direction, and the totals of its chains' origins

Query: ``window`` (a duration: 10s, 15m, 1h, 7d, 2w; default 1h), ``step`` (one of the kept
steps; default the finest giving at most 500 points), ``end`` (Unix seconds or ISO 8601;
default now). Malformed or too large: 400 with a NeutronError. Readers may read; members see
only their projects' objects (others are 404, as in the rest of the API).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from django.db.models import Model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.accounting import series
from sgweb.accounting.models import PortOriginUsage, RuleUsage
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.access import scope
from sgweb.tenancy.errors import NotFound

PARAMETERS = [
    OpenApiParameter("object_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
    OpenApiParameter(
        "window", OpenApiTypes.STR, description="Duration ending at `end`: 10s, 15m, 1h, 7d, 2w "
        "(default 1h; at most the longest retention)",
    ),
    OpenApiParameter(
        "step", OpenApiTypes.STR, description="Bucket width, one of the kept steps (default: "
        "the finest giving at most 500 points; at most 10000 points)",
    ),
    OpenApiParameter("end", OpenApiTypes.STR, description="Unix seconds or ISO 8601; default now"),
]  # fmt: skip
ERRORS = {
    400: OpenApiResponse(description="Malformed or too large window, step or end"),
    404: OpenApiResponse(description="No such object, or not one of your projects'"),
}
M = TypeVar("M", bound=Model)
SERIES_NOTE = (
    "`window` gives the buckets: `start` (Unix seconds, first bucket), `end` (exclusive) and "
    "`step` (seconds); every series has one value per bucket."
)


def iso_time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def visible_and_span(
    request: Request, model: type[M], object_id: str, not_found: str, of: str = "rules"
) -> tuple[M, series.Window]:
    """The object the caller may see by its id (a malformed id, another project's object or
    none at all: 404 with `not_found`), then the window the query asks for (malformed: 400)."""
    try:
        key = uuid.UUID(object_id)
    except ValueError:
        raise NotFound(not_found) from None
    found = scope(request.user, model._default_manager.filter(pk=key)).first()
    if found is None:
        raise NotFound(not_found)
    params = request.query_params
    span = series.window(
        params.get("window", "1h"), params.get("step") or None, params.get("end"), of=of
    )
    return found, span


def rule_hits(rule: SecurityGroupRule, usage: RuleUsage | None, values: dict[str, list[int]],
              now: float | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": str(rule.id),
        "security_group_id": str(rule.security_group_id),
        "project_id": rule.project_id.hex,
        **usage_fields(usage, rule.created_at, values, now),
    }


def usage_fields(
    usage: Any, created_at: datetime, values: dict[str, list[int]], now: float | None
) -> dict[str, Any]:
    """What every rule's hits answer says of its kept usage (a security-group rule's
    `RuleUsage` or a firewall rule's `FirewallRuleUsage`, None before its first hit) and of
    the window's series."""
    return {
        "packets": usage.packets if usage else 0,
        "bytes": usage.bytes if usage else 0,
        "first_hit_at": iso_time(usage.first_hit_at) if usage else None,
        "last_hit_at": iso_time(usage.last_hit_at) if usage else None,
        "unused_days": series.unused_days(usage, created_at, now),
        "window_packets": sum(values["packets"]),
        "window_bytes": sum(values["bytes"]),
        "series": values,
    }


class RuleHitsView(APIView):
    @extend_schema(
        operation_id="show_security_group_rule_hits", tags=["rule hits"],
        parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="A rule's hits summed over ports and hosts since it was created, its first "
        "and last hit, and its series over the window. " + SERIES_NOTE,
    )  # fmt: skip
    def get(self, request: Request, object_id: str) -> Response:
        message = f"Security group rule {object_id} does not exist"
        rule, span = visible_and_span(request, SecurityGroupRule, object_id, message)
        values = series.rule_series([rule.id], span)[rule.id]
        usage = RuleUsage.objects.filter(rule=rule).first()
        return Response({"rule_hits": {**rule_hits(rule, usage, values), "window": span.as_dict()}})


class GroupHitsView(APIView):
    @extend_schema(
        operation_id="show_security_group_hits", tags=["rule hits"],
        parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="The hits of every rule of a group, as for one rule. " + SERIES_NOTE,
    )  # fmt: skip
    def get(self, request: Request, object_id: str) -> Response:
        message = f"Security group {object_id} does not exist"
        group, span = visible_and_span(request, SecurityGroup, object_id, message)
        rules = list(group.rules.order_by("created_at", "id"))
        values = series.rule_series([rule.id for rule in rules], span)
        usage = series.usage_of(rule.id for rule in rules)
        return Response(
            {
                "security_group_hits": {
                    "id": str(group.id),
                    "window": span.as_dict(),
                    "rules": [rule_hits(r, usage.get(r.id), values[r.id]) for r in rules],
                }
            }
        )


class PortHitsView(APIView):
    @extend_schema(
        operation_id="show_port_hits", tags=["rule hits"],
        parameters=PARAMETERS, responses={200: OpenApiTypes.OBJECT, **ERRORS},
        description="A port's accepted and dropped packets per direction (the VM's view) over "
        "the window, and the totals of each origin of its chains (rules, anti-spoofing, DHCP, "
        "INVALID, established, the fallback drop). " + SERIES_NOTE,
    )  # fmt: skip
    def get(self, request: Request, object_id: str) -> Response:
        message = f"Port {object_id} could not be found."
        port, span = visible_and_span(request, Port, object_id, message, of="ports")
        origins = PortOriginUsage.objects.filter(port=port).order_by("direction", "kind", "rule_id")
        return Response(
            {
                "port_hits": {
                    "id": str(port.id),
                    "window": span.as_dict(),
                    "directions": series.port_series(port.id, span),
                    "origins": [
                        {
                            "direction": o.direction or None,
                            "kind": o.kind,
                            "security_group_rule_id": o.rule_id or None,
                            "verdict": o.verdict,
                            "packets": o.packets,
                            "bytes": o.bytes,
                            "last_hit_at": iso_time(o.last_hit_at),
                        }
                        for o in origins
                    ],
                }
            }
        )
