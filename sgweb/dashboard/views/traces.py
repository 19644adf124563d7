"""Packet traces: ask why a packet is allowed or dropped, see the static verdict at once, then the
kernel's proof packet by packet; kept traces are listed and shareable by link.

Who may do what: running a trace sends real packets from a VM (or watches a host's real traffic),
so only those who may change the project (members, admins) start one; readers, the security team,
open and share every trace but run none. Outsiders see no trace of another project (404).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from sgweb.dashboard.forms import TraceForm
from sgweb.dashboard.guards import deny_unless_changeable, raise_for_access
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.pathpaint import path_view
from sgweb.dashboard.presentation import rule_ports_text, rule_protocol_text
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.tracepaint import (
    host_order,
    kernel_rule_ids,
    linked_explanation,
    packet_views,
    proof_line,
    result_of,
    result_sentence,
    rule_ids_in,
    static_view,
    status_words,
)
from sgweb.dashboard.views.common import add_action_error, done, refused
from sgweb.dashboard.views.ports import search_ports
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroupRule
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.access import scope
from sgweb.tenancy.errors import ActionError
from sgweb.traces.actions import get_trace, start_trace, visible_traces

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PROTOCOLS = (("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP (ping)"))
TRACE_SORTS = {"when": "created_at", "status": "status"}
PORT_SUGGESTIONS = 12
ENDS = ("source", "destination")


def _may_run(user: Any) -> bool:
    return tenancy_access.writable_projects(user).exists()


def _port_label(port: Port) -> str:
    addresses = ", ".join(ip.ip_address for ip in port.fixed_ips.all())
    name = port.name or str(port.pk)[:8]
    return f"{name} ({addresses})" if addresses else name


def _visible_ports(user: Any) -> QuerySet[Port]:
    return scope(user, Port.objects.select_related("host", "project"))


def _resolve_port(user: Any, text: str) -> Port | None:
    """A port the user may see, by id, or by a name no other visible port shares."""
    text = text.strip()
    if not text:
        return None
    ports = _visible_ports(user)
    try:
        return ports.filter(pk=uuid.UUID(text.split(" ")[0])).first()
    except ValueError:
        pass
    name = text.split(" (")[0]
    matches = list(ports.filter(name=name)[:2])
    return matches[0] if len(matches) == 1 else None


def _initial(request: HttpRequest) -> dict[str, str]:
    """Prefill from a link such as the port page's `?destination=port:<id>`."""
    initial = {"source_kind": "address", "destination_kind": "port", "protocol": "tcp"}
    for end in ENDS:
        value = request.GET.get(end, "")
        if value.startswith("port:"):
            port = _resolve_port(request.user, value[5:])
            if port is not None:
                initial[f"{end}_kind"] = "port"
                initial[f"{end}_port"] = str(port.pk)
                initial[f"{end}_port_label"] = _port_label(port)
        elif value:
            initial[f"{end}_kind"] = "address"
            initial[f"{end}_address"] = value
    for key in ("protocol", "port", "icmp_type", "icmp_code"):
        if request.GET.get(key):
            initial[key] = request.GET[key]
    return initial


def _values(request: HttpRequest, initial: dict[str, str]) -> dict[str, str]:
    """What the form shows: the prefill, or what was posted (with the picked ports' labels)."""
    if request.method != "POST":
        return initial
    values = {key: request.POST.get(key, "") for key in TraceForm.base_fields}
    for end in ENDS:
        port = _resolve_port(request.user, values.get(f"{end}_port", ""))
        values[f"{end}_port_label"] = _port_label(port) if port else values.get(f"{end}_port", "")
    return values


def _endpoints(request: HttpRequest, form: TraceForm) -> dict[str, str] | None:
    """source / destination as start_trace takes them: a port id or an address."""
    data = form.cleaned_data
    ends: dict[str, str] = {}
    for end in ENDS:
        if data.get(f"{end}_kind") == "port":
            field = f"{end}_port"
            if not data.get(field, "").strip():
                form.add_error(field, "Choose a port.")
                continue
            port = _resolve_port(request.user, data[field])
            if port is None:
                form.add_error(field, "No port you may see has this id or name.")
                continue
            ends[end] = str(port.pk)
        else:
            field = f"{end}_address"
            if not data.get(field, "").strip():
                form.add_error(field, "Give an IP address.")
                continue
            ends[end] = data[field].strip()
    return ends if len(ends) == 2 else None


def _number(value: str) -> int | str | None:
    """Numbers as numbers; anything else is passed on for the tracer's validator to refuse."""
    value = (value or "").strip()
    if not value:
        return None
    return int(value) if value.isdigit() else value


@login_required
def trace_new(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    # Readers look, they do not probe: a trace sends real packets on lab hosts.
    if not _may_run(request.user):
        deny_unless_changeable(request.user, None)
    form = TraceForm(request.POST or None)
    initial = _initial(request) if request.method != "POST" else {}

    def page(status: int = 200) -> HttpResponse:
        return render_page(
            request,
            "dashboard/traces/new.html",
            {"form": form, "values": _values(request, initial), "protocols": PROTOCOLS},
            section="traces",
            shell=shell,
            status=status,
        )

    if request.method != "POST":
        return page()
    form.is_valid()
    ends = _endpoints(request, form)
    if ends is None:
        return refused(request, form, page)
    data = form.cleaned_data
    protocol = data.get("protocol", "").strip().lower()
    icmp = protocol.startswith("icmp") or protocol == "ipv6-icmp"
    try:
        trace = start_trace(
            request.user,
            source=ends["source"],
            destination=ends["destination"],
            protocol=protocol,
            port=None if icmp else _number(data.get("port", "")),
            icmp_type=_number(data.get("icmp_type", "")) if icmp else None,
            icmp_code=_number(data.get("icmp_code", "")) if icmp else None,
        )
    except ActionError as error:
        if error.status_code in (403, 404) and not error.errors:
            raise_for_access(error)
        kinds = {end: data.get(f"{end}_kind") or "address" for end in ENDS}
        add_action_error(
            form,
            error,
            aliases={
                "source": f"source_{kinds['source']}",
                "destination": f"destination_{kinds['destination']}",
                "dport": "port",
                "destination_port": "port",
            },
        )
        return refused(request, form, page, status=error.status_code)
    return done(request, reverse("dashboard:trace", args=[trace.pk]))


@login_required
def port_suggestions(request: HttpRequest) -> JsonResponse:
    """Ports for the pickers: name, id prefix, MAC or address, only those the user may see."""

    query = search_term(request)
    ports = _visible_ports(request.user).prefetch_related("fixed_ips")
    if query:
        ports = search_ports(ports, query)
    rows = [
        {
            "id": str(port.pk),
            "label": _port_label(port),
            "name": port.name,
            "host": port.host.name if port.host else None,
            "project": port.project.name,
            "addresses": [ip.ip_address for ip in port.fixed_ips.all()],
        }
        for port in ports.order_by("name", "pk")[:PORT_SUGGESTIONS]
    ]
    return JsonResponse({"ports": rows})


def _rules_by_id(static: dict[str, Any] | None, also: set[str] | None = None) -> dict[str, Any]:
    ids = []
    for text in rule_ids_in(static) | (also or set()):
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            continue
    rules = {}
    rule: Any  # a SecurityGroupRule that also carries .summary and .group_name for the page
    for rule in SecurityGroupRule.objects.filter(pk__in=ids).select_related("security_group"):
        remote = rule.remote_ip_prefix or (
            f"group {rule.remote_group_id}" if rule.remote_group_id else "anywhere"
        )
        ports = rule_ports_text(rule)
        words = rule_protocol_text(rule) if ports == "any" else f"{rule.protocol}/{ports}"
        side = "from" if rule.direction == "ingress" else "to"
        rule.summary = f"{words} {side} {remote}"
        rule.group_name = rule.security_group.name or str(rule.security_group_id)[:8]
        rules[str(rule.pk)] = rule
    return rules


def _capfirst(text: str) -> str:
    return text[:1].upper() + text[1:]


@login_required
def trace_detail(request: HttpRequest, trace_id: str) -> HttpResponse:

    try:
        trace = get_trace(request.user, trace_id)
    except ActionError as error:
        raise_for_access(error)
        raise
    static = trace.static_result or {}
    events = list(trace.events or [])
    rules = _rules_by_id(static, kernel_rule_ids(events))
    result = result_of(events, trace.kernel_result)
    label, css = status_words(trace.status)
    static_paths = static_view(static, rules)
    routed = static.get("path")
    hosts = host_order(
        static_paths, routed.get("router_host") if isinstance(routed, dict) else None
    )
    packets = packet_views(events, rules, hosts)
    return render_page(
        request,
        "dashboard/traces/detail.html",
        {
            "trace": trace,
            "static": static_paths,
            "path": path_view(static),
            "explanation": linked_explanation(_capfirst(str(static.get("explanation", ""))), rules),
            "packets": packets,
            "host_order": " ".join(hosts),
            "result": result,
            "result_sentence": result_sentence(result, packets),
            "proof": proof_line(trace.host, trace.mode, trace.finished, result),
            "status_label": label,
            "status_css": css,
            "finished": trace.finished,
            "share_url": request.build_absolute_uri(reverse("dashboard:trace", args=[trace.pk])),
            "may_run": _may_run(request.user),
        },
        section="traces",
    )


def _search(query: str) -> Q:
    """Addresses, typed ends (port names or ids), the host, and `tcp`, `5432` or `tcp/5432`."""
    condition = (
        Q(source__icontains=query)
        | Q(destination__icontains=query)
        | Q(source_address__startswith=query)
        | Q(destination_address__startswith=query)
        | Q(host__icontains=query)
        | Q(source_port__name__icontains=query)
        | Q(destination_port__name__icontains=query)
    )
    protocol, _, number = query.partition("/")
    if query.isdigit():
        condition |= Q(port=int(query))
    elif number.isdigit():
        condition |= Q(protocol__iexact=protocol, port=int(number))
    else:
        condition |= Q(protocol__iexact=query)
    return condition


@login_required
def trace_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        # The protocol's `POST /traces`: the list is where a new trace is filed.
        return trace_new(request)

    shell = build_shell(request)
    traces = visible_traces(request.user).select_related(
        "created_by", "project", "source_port", "destination_port"
    )
    if shell.current_project is not None:
        traces = traces.filter(project=shell.current_project)
    filters = {key: request.GET.get(key, "") for key in ("verdict", "status", "who")}
    if filters["verdict"] in ("ACCEPT", "DROP"):
        traces = traces.filter(static_result__verdict=filters["verdict"])
    if filters["status"]:
        traces = traces.filter(status=filters["status"])
    if filters["who"] == "me":
        traces = traces.filter(created_by=cast("User", request.user))  # login_required
    query = search_term(request)
    if query:
        traces = traces.filter(_search(query))
    traces, _ = sorted_by(request, traces, TRACE_SORTS, "-created_at,-pk")
    listing = paginate(request, traces)
    rows = [(trace, status_words(trace.status)) for trace in listing.page.object_list]
    return render_page(
        request,
        "dashboard/traces/list.html",
        {
            "listing": listing,
            "rows": rows,
            "filters": filters,
            "may_run": _may_run(request.user),
            "statuses": ("pending", "running", "done", "observed", "failed", "timeout"),
        },
        section="traces",
        shell=shell,
    )
