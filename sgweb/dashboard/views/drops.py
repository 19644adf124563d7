"""The drop log's pages: the logged flows of a port, a group, a host or a project, newest first,
each explained, with "Trace this" and "Allow this" (both only open a pre-filled form)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from sgweb.dashboard.shell import build_shell, render_page
from sgweb.droplog import query
from sgweb.droplog.models import DropFlow
from sgweb.droplog.representation import protocol_name
from sgweb.droplog.suggest import suggested_rule, trace_query
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import can_change_project, scope, visible_projects
from sgweb.tenancy.errors import Invalid

SHOWN = 200
FORM_FILTERS = ("direction", "protocol", "address", "port")
SUBJECTS = ("port_id", "security_group_id", "host", "project_id")


def _id(params: dict[str, str], key: str) -> uuid.UUID:
    try:
        return uuid.UUID(params[key])
    except ValueError:
        raise Http404("No such object.") from None  # as missing as another project's


def _subject(request: HttpRequest, params: dict[str, str]) -> tuple[str, str]:
    """What the page is about, in words ("port web1"), and (for a group) its ports' ids for
    the live filter. An object the user may not see is a 404, as everywhere."""
    user = request.user
    if params["port_id"]:
        port = scope(user, Port.objects.filter(pk=_id(params, "port_id"))).first()
        if port is None:
            raise Http404("No such port.")
        return f"port {port.name or port.pk}", ""
    if params["security_group_id"]:
        wanted = _id(params, "security_group_id")
        group = scope(user, SecurityGroup.objects.filter(pk=wanted)).first()
        if group is None:
            raise Http404("No such security group.")
        ports = Port.objects.filter(group_links__security_group=group).values_list("pk", flat=True)
        return f"group {group.name or group.pk}", " ".join(str(pk) for pk in ports)
    if params["project_id"]:
        project = visible_projects(user).filter(pk=_id(params, "project_id")).first()
        if project is None:
            raise Http404("No such project.")
        return f"project {project.name}", ""
    if params["host"]:
        return f"host {params['host']}", ""
    return "your projects", ""


@login_required
def drop_list(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    params = {key: request.GET.get(key, "").strip() for key in (*SUBJECTS, *FORM_FILTERS)}
    if not any(params[key] for key in SUBJECTS) and shell.current_project is not None:
        params["project_id"] = str(shell.current_project.pk)
    subject, group_ports = _subject(request, params)
    error = ""
    try:
        flows = query.filtered(query.visible_flows(request.user), params)
        rows = list(query.newest_first(flows).select_related("port")[:SHOWN])
    except Invalid as exc:
        error, rows = exc.message, []
    writable = {
        str(pid)
        for pid in {row.project_id for row in rows}
        if can_change_project(request.user, pid)
    }
    return render_page(
        request,
        "dashboard/drops/list.html",
        {
            "rows": [_row(row, writable) for row in rows],
            "subject": subject,
            "params": params,
            "group_ports": group_ports,
            "error": error,
            "shown": SHOWN,
            "hidden_filters": {k: params[k] for k in SUBJECTS if params[k]},
            "shed": query.shed_by_host(request.user, params["host"]),
        },
        section="drops",
        shell=shell,
    )


def _row(row: DropFlow, writable: set[str]) -> dict[str, Any]:
    return {
        "flow": row,
        "protocol": protocol_name(row.protocol),
        "can_allow": row.event == "DROP" and str(row.project_id) in writable,
    }


def _flow(request: HttpRequest, key: str) -> DropFlow:
    flow = query.visible_flows(request.user).filter(key=key).first()
    if flow is None:
        raise Http404("No such flow.")
    return flow


@login_required
def drop_trace(request: HttpRequest, key: str) -> HttpResponse:
    """ "Trace this": the trace form, filled in with the flow (nothing runs until submitted)."""
    flow = _flow(request, key)
    return HttpResponseRedirect(f"{reverse('dashboard:trace_new')}?{urlencode(trace_query(flow))}")


@login_required
def drop_allow(request: HttpRequest, key: str) -> HttpResponse:
    """ "Allow this": the group's rule form, filled in with the narrowest rule that would allow
    the flow; the admin reads it and clicks "Add rule" (or not)."""
    flow = _flow(request, key)
    rule = suggested_rule(flow)
    if rule is None:
        raise Http404("Nothing to allow: the flow was accepted or its port has no group.")
    url = reverse("dashboard:security_group", args=[rule.security_group_id])
    return HttpResponseRedirect(f"{url}?{urlencode(rule.form_query())}#add-rule")
