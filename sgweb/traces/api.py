"""JSON API of traces: `POST /api/traces` starts one, `GET /api/traces[/<id>]` reads them.

Authenticated like the Neutron API (X-Auth-Token or the dashboard's session); errors come as
the Neutron error body with the action's status code.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.traces import actions
from sgweb.traces.models import Trace

LIST_LIMIT = 100


def trace_url(trace: Trace) -> str:
    return f"/traces/{trace.pk}"


def trace_json(trace: Trace, *, events: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(trace.pk),
        "status": trace.status,
        "created_at": trace.created_at.isoformat() if trace.created_at else None,
        "finished_at": trace.finished_at.isoformat() if trace.finished_at else None,
        "created_by": trace.created_by.get_username() if trace.created_by else None,
        "project_id": trace.project_id.hex if trace.project_id else None,
        "source": trace.source,
        "destination": trace.destination,
        "source_port_id": str(trace.source_port_id) if trace.source_port_id else None,
        "destination_port_id": (
            str(trace.destination_port_id) if trace.destination_port_id else None
        ),
        "source_address": trace.source_address,
        "destination_address": trace.destination_address,
        "family": trace.family,
        "protocol": trace.protocol,
        "port": trace.port,
        "icmp_type": trace.icmp_type,
        "icmp_code": trace.icmp_code,
        "host": trace.host,
        "mode": trace.mode,
        "static": trace.static_result,
        "kernel": trace.kernel_result,
        "url": trace_url(trace),
    }
    if events:
        data["events"] = trace.events
    return data


class TraceListView(APIView):
    def get(self, request: Request) -> Response:
        traces = actions.visible_traces(request.user).select_related("created_by")[:LIST_LIMIT]
        return Response({"traces": [trace_json(trace) for trace in traces]})

    def post(self, request: Request) -> Response:
        body = request.data if isinstance(request.data, dict) else {}
        fields = body.get("trace", body)
        trace = actions.start_trace(
            request.user,
            source=str(fields.get("source") or ""),
            destination=str(fields.get("destination") or ""),
            protocol=str(fields.get("protocol") or ""),
            port=fields.get("port"),
            icmp_type=fields.get("icmp_type"),
            icmp_code=fields.get("icmp_code"),
        )
        return Response({"trace": trace_json(trace)}, status=201)


class TraceDetailView(APIView):
    def get(self, request: Request, trace_id: str) -> Response:
        trace = actions.get_trace(request.user, trace_id)
        return Response({"trace": trace_json(trace, events=True)})
