"""The drop log over the API: an extension beside the Neutron resources (alias ``sgweb-drops``),
under the same /networking/v2.0 root and token auth.

``GET /v2.0/sgweb-drops`` lists the logged flows the caller may see, newest (last packet) first,
one entry per flow with its counts, first and last packet, the explanation and what "Allow
this" would propose (``suggested_rule``, null for accepted flows). Filters: see
`sgweb.droplog.query`; ``limit`` (1-1000, default 100). A member sees their projects' flows only.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.droplog import query
from sgweb.droplog.models import DropFlow
from sgweb.droplog.representation import flow_to_dict
from sgweb.droplog.suggest import SuggestedRule, suggested_rules

PARAMETERS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=text)
    for name, text in (
        ("port_id", "Flows of this port"),
        ("security_group_id", "Flows of the ports of this group"),
        ("host", "Flows logged on this host"),
        ("project_id", "Flows of this project's ports"),
        ("direction", "ingress or egress (as the VM sees it)"),
        ("event", "DROP or ACCEPT"),
        ("protocol", "tcp, udp, icmp, ipv6-icmp or a number"),
        ("address", "Either end's IP address"),
        ("port", "Either end's TCP/UDP port"),
        ("since", "Last packet at or after: Unix seconds or ISO 8601"),
        ("limit", "At most this many flows (1-1000, default 100)"),
    )
]


def drop_to_dict(flow: DropFlow, rule: SuggestedRule | None) -> dict[str, Any]:
    return {**flow_to_dict(flow), "suggested_rule": rule.as_dict() if rule else None}


class DropsView(APIView):
    @extend_schema(
        operation_id="list_sgweb_drops",
        parameters=PARAMETERS,
        responses={
            200: OpenApiResponse(description='{"drops": [...]}, newest first'),
            400: OpenApiResponse(description="A malformed filter"),
        },
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        flows = query.filtered(query.visible_flows(request.user), params)
        rows = list(query.newest_first(flows).select_related("port")[: query.limit_of(params)])
        rules = suggested_rules(rows)
        shed = query.shed_by_host(request.user, str(params.get("host") or "").strip())
        return Response(
            {
                "drops": [drop_to_dict(flow, rules[flow.key]) for flow in rows],
                # Log packets the agents shed (bounded memory): these flows are not all there was.
                "shed": [{"host": item["host"], "shed": item["shed"]} for item in shed],
            }
        )
