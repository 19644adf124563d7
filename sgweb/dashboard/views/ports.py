"""Port pages: the list with its filters, a port with its addresses, groups and address pairs."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard import usage
from sgweb.dashboard.forms import AddressPairForm, PortGroupsForm
from sgweb.dashboard.guards import deny_unless_changeable, get_visible_or_404, raise_for_access
from sgweb.dashboard.hoststate import statuses
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.livepaint import port_chains_view
from sgweb.dashboard.presentation import port_status
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.views.common import (
    Done,
    button_change,
    done,
    following,
    refused,
    refused_message,
    submit,
)
from sgweb.firewall import names
from sgweb.networks import actions
from sgweb.networks.models import (
    AllowedAddressPair,
    FixedIP,
    Host,
    Network,
    Port,
    PortSecurityGroup,
)
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import can_change_project, scope
from sgweb.tenancy.errors import ActionError

PORT_SORTS = {
    "name": "name",
    "host": "host__name",
    "network": "network__name",
    "project": "project__name",
    "updated": "updated_at",
}
FILTER_CHOICES_LIMIT = 500


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def search_ports(ports: QuerySet[Port], query: str) -> QuerySet[Port]:
    """Names, ids (or a tap device's id part), MACs and addresses."""
    term = query.lower()
    if term.startswith("tap"):
        term = term[3:]
    condition = Q(name__icontains=query) | Q(mac_address__istartswith=query)
    compact = term.replace("-", "")
    if 4 <= len(compact) <= 32 and all(c in "0123456789abcdef" for c in compact):
        condition |= Q(pk__gte=compact.ljust(32, "0"), pk__lte=compact.ljust(32, "f"))
    if any(c in query for c in ".:") or query.isdigit():
        # A subquery rather than a join keeps one row per port without DISTINCT.
        condition |= Q(
            pk__in=FixedIP.objects.filter(ip_address__startswith=query).values("port_id")
        )
        condition |= Q(
            pk__in=AllowedAddressPair.objects.filter(ip_address__startswith=query).values("port_id")
        )
    return ports.filter(condition)


def _list_queryset(user: Any) -> QuerySet[Port]:
    return scope(
        user,
        Port.objects.select_related("project", "network", "host").prefetch_related(
            "fixed_ips",
            Prefetch(
                "group_links",
                queryset=PortSecurityGroup.objects.select_related("security_group").order_by(
                    "position"
                ),
            ),
        ),
    )


@login_required
def port_list(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    user = request.user
    ports = _list_queryset(user)
    params = request.GET
    project_id = params.get("project") or (
        str(shell.current_project.pk) if shell.current_project else ""
    )
    filters: dict[str, str] = {}
    for key, field in (("project", "project_id"), ("network", "network_id"), ("group", None)):
        value = project_id if key == "project" else params.get(key, "")
        if not value:
            continue
        filters[key] = value
        wanted = _uuid_or_none(value)
        if wanted is None:
            ports = ports.none()
        elif field:
            ports = ports.filter(**{field: wanted})
        else:
            ports = ports.filter(
                pk__in=PortSecurityGroup.objects.filter(security_group_id=wanted).values("port_id")
            )
    host = params.get("host", "")
    if host == "-":
        ports = ports.filter(host__isnull=True)
    elif host:
        ports = ports.filter(host__name=host)
    security = params.get("security", "")
    if security in ("on", "off"):
        ports = ports.filter(port_security_enabled=security == "on")
    query = search_term(request)
    if query:
        ports = search_ports(ports, query)
    ports, _ = sorted_by(request, ports, PORT_SORTS, "name,pk")
    listing = paginate(request, ports)
    listing.page.object_list = list(listing.page.object_list)
    _add_port_statuses(listing.page.object_list)

    networks = scope(user, Network.objects.select_related("project"))
    groups = scope(user, SecurityGroup.objects.select_related("project"))
    if project_id and _uuid_or_none(project_id):
        networks = networks.filter(project_id=project_id)
        groups = groups.filter(project_id=project_id)
    selected_group = None
    if filters.get("group") and _uuid_or_none(filters["group"]):
        selected_group = groups.filter(pk=filters["group"]).first()
    return render_page(
        request,
        "dashboard/ports/list.html",
        {
            "listing": listing,
            "filters": filters,
            "host_filter": host,
            "security": security,
            "network_options": _options(
                networks.order_by("name")[:FILTER_CHOICES_LIMIT], filters.get("network", "")
            ),
            "group_options": _options(
                groups.order_by("name")[:FILTER_CHOICES_LIMIT], filters.get("group", "")
            ),
            "host_options": [
                (name, name, name == host)
                for name in Host.objects.order_by("name").values_list("name", flat=True)[
                    :FILTER_CHOICES_LIMIT
                ]
            ],
            "selected_group": selected_group,
        },
        section="ports",
        shell=shell,
    )


def _add_port_statuses(ports: Any) -> None:
    """Each port's status (`presentation.port_status`), its hosts asked in one go."""
    ports = list(ports)
    hosts = {port.host.name: port.host for port in ports if port.host is not None}
    views = dict(zip(hosts, statuses(list(hosts.values())), strict=True))
    for port in ports:
        port.status_view = port_status(port, views.get(port.host.name) if port.host else None)


def _options(objects: Any, selected: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) for a filter's <select>, built here rather than in the
    template: hundreds of options are cheap in Python and slow in template tags. Options from
    several projects name their project: two groups called `default` must be told apart."""
    objects = list(objects)
    projects = {obj.project_id for obj in objects}
    options = []
    for obj in objects:
        value = str(obj.pk)
        label = obj.name or value
        if len(projects) > 1:
            label = f"{label} \u00b7 {obj.project.name}"
        options.append((value, label, value == selected))
    return options


def _port_for(request: HttpRequest, port_id: str) -> Port:
    return get_visible_or_404(
        Port.objects.select_related("project", "network", "host"), request.user, pk=port_id
    )


def firewall_chains(port: Port) -> list[dict[str, str]]:
    """The port's own chains as the compiler names them (issue 5 streams their counters)."""
    prefix = getattr(settings, "FIREWALL_CHAIN_PREFIX", "neutron-openvswi")
    port_id = str(port.pk)
    return [
        {
            "letter": "i",
            "name": names.ingress_chain(prefix, port_id),
            "purpose": "Ingress: traffic to the VM, checked against the ingress rules",
        },
        {
            "letter": "o",
            "name": names.egress_chain(prefix, port_id),
            "purpose": "Egress: traffic from the VM, checked against the egress rules",
        },
        {
            "letter": "s",
            "name": names.spoof_chain(prefix, port_id),
            "purpose": "Anti-spoofing: the VM may only send from its own IP and MAC addresses",
        },
    ]


def _detail_context(request: HttpRequest, port: Port) -> dict[str, Any]:
    window = usage.window_key(request)
    fixed_ips = list(port.fixed_ips.select_related("subnet").order_by("pk"))
    links = list(port.group_links.select_related("security_group").order_by("position"))
    attached = {link.security_group_id for link in links}
    available = [
        group
        for group in SecurityGroup.objects.filter(project_id=port.project_id)
        .order_by("name")
        .only("id", "name")
        if group.pk not in attached
    ]
    host_view = statuses([port.host])[0] if port.host else None
    subnets = {ip.subnet_id: ip.subnet for ip in fixed_ips}
    dhcp_servers = sorted(
        {server for subnet in subnets.values() for server in subnet.dhcp_servers or []}
    )
    return {
        "port": port,
        "fixed_ips": fixed_ips,
        "links": links,
        "available_groups": available,
        "pairs": list(port.allowed_address_pairs.order_by("pk")),
        "dhcp_servers": dhcp_servers,
        "chains": firewall_chains(port),
        "chains_view": port_chains_view(port),
        "host_status": host_view,
        "port_status": port_status(port, host_view),
        "can_change": can_change_project(request.user, port.project_id),
        "can_trace": can_change_project(request.user, port.project_id),
        "traffic": usage.port_usage(port, window),
        "window": window,
        "window_choices": usage.WINDOW_CHOICES,
    }


def _detail_page(request: HttpRequest, port: Port, status: int = 200, **extra: Any) -> HttpResponse:
    context = _detail_context(request, port)
    context.setdefault("group_form", PortGroupsForm())
    context.setdefault("pair_form", AddressPairForm())
    context.update(extra)
    return render_page(
        request, "dashboard/ports/detail.html", context, section="ports", status=status
    )


@login_required
def port_detail(request: HttpRequest, port_id: str) -> HttpResponse:
    return _detail_page(request, _port_for(request, port_id))


def _current_group_ids(port: Port) -> list[str]:
    return [
        str(group_id)
        for group_id in port.group_links.order_by("position").values_list(
            "security_group_id", flat=True
        )
    ]


def _current_pairs(port: Port) -> list[dict[str, str]]:
    return [
        {"ip_address": pair.ip_address, "mac_address": pair.mac_address}
        for pair in port.allowed_address_pairs.order_by("pk")
    ]


@login_required
@require_POST
def port_add_group(request: HttpRequest, port_id: str) -> HttpResponse:
    port = _port_for(request, port_id)
    deny_unless_changeable(request.user, port.project_id)
    form = PortGroupsForm(request.POST)
    url = reverse("dashboard:port", args=[port.pk])

    def page(status: int = 200) -> HttpResponse:
        return _detail_page(request, port, status, group_form=form)

    if not form.is_valid():
        # The only field is the picked group: say so in the page's words, not Django's.
        form.errors.clear()
        form.add_error("security_group", "Choose a security group.")
        return refused(request, form, page)

    def attach() -> Done:
        with following(request, f"port {port.name or port.pk}: group attached"):
            groups = [*_current_group_ids(port), form.cleaned_data["security_group"]]
            actions.update_port(request.user, port, security_groups=groups)
        return Done(f"{url}#groups", "Security group attached.")

    return submit(request, form, page, attach, aliases={"security_groups": "security_group"})


@login_required
@require_POST
def port_remove_group(request: HttpRequest, port_id: str, group_id: str) -> HttpResponse:
    port = _port_for(request, port_id)
    deny_unless_changeable(request.user, port.project_id)
    url = reverse("dashboard:port", args=[port.pk])
    remaining = [gid for gid in _current_group_ids(port) if gid != group_id]

    def detach() -> None:
        with following(request, f"port {port.name or port.pk}: group detached"):
            actions.update_port(request.user, port, security_groups=remaining)

    return button_change(
        request, detach, back=url, to=f"{url}#groups", message="Security group detached."
    )


@login_required
@require_POST
def port_security(request: HttpRequest, port_id: str) -> HttpResponse:
    port = _port_for(request, port_id)
    deny_unless_changeable(request.user, port.project_id)
    url = reverse("dashboard:port", args=[port.pk])
    enable = request.POST.get("enabled") == "true"
    try:
        with following(request, f"port {port.name or port.pk}: port security"):
            actions.update_port(request.user, port, port_security_enabled=enable)
    except ActionError as error:
        raise_for_access(error)
        detail = " ".join(m for ms in error.errors.values() for m in ms)
        return refused_message(request, url, f"{error.message} {detail}".strip(), error.status_code)
    state = (
        "enabled: the port is filtered again"
        if enable
        else "disabled: no firewall chains for this port"
    )
    return done(request, url, f"Port security {state}.")


@login_required
@require_POST
def pair_add(request: HttpRequest, port_id: str) -> HttpResponse:
    port = _port_for(request, port_id)
    deny_unless_changeable(request.user, port.project_id)
    form = AddressPairForm(request.POST)
    url = reverse("dashboard:port", args=[port.pk])

    def add() -> Done | None:
        pair = {"ip_address": form.cleaned_data.get("ip_address", "").strip()}
        mac = form.cleaned_data.get("mac_address", "").strip()
        if mac:
            pair["mac_address"] = mac
        if not pair["ip_address"]:
            form.add_error("ip_address", "Give an IP address or CIDR.")
            return None
        with following(request, f"port {port.name or port.pk}: address pair added"):
            pairs = [*_current_pairs(port), pair]
            actions.update_port(request.user, port, allowed_address_pairs=pairs)
        return Done(f"{url}#pairs", "Allowed address pair added.")

    # The validators name the whole list; the new pair is the one that can be wrong.
    return submit(
        request,
        form,
        lambda status: _detail_page(request, port, status, pair_form=form),
        add,
        aliases={"allowed_address_pairs": "ip_address"},
    )


@login_required
@require_POST
def pair_remove(request: HttpRequest, port_id: str, pair_id: int) -> HttpResponse:
    port = _port_for(request, port_id)
    deny_unless_changeable(request.user, port.project_id)
    url = reverse("dashboard:port", args=[port.pk])
    pairs = [
        {"ip_address": pair.ip_address, "mac_address": pair.mac_address}
        for pair in port.allowed_address_pairs.order_by("pk")
        if pair.pk != pair_id
    ]

    def remove() -> None:
        with following(request, f"port {port.name or port.pk}: address pair removed"):
            actions.update_port(request.user, port, allowed_address_pairs=pairs)

    return button_change(
        request, remove, back=url, to=f"{url}#pairs", message="Allowed address pair removed."
    )
