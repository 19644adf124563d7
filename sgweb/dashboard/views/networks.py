"""Networks and their subnets (CIDR, gateway, the DHCP servers the ingress chains accept)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard.forms import NetworkForm, SubnetForm
from sgweb.dashboard.guards import deny_unless_changeable, get_visible_or_404
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.views.common import (
    Done,
    create_page,
    delete_or_refuse,
    following,
    save_edit,
    submit,
)
from sgweb.networks import actions
from sgweb.networks.models import Network, Port, Subnet
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.access import can_change_project, scope
from sgweb.tenancy.models import Project

NETWORK_SORTS = {"name": "name", "project": "project__name", "ports": "port_count"}


def _port_count() -> Coalesce:
    return Coalesce(
        Subquery(
            Port.objects.filter(network=OuterRef("pk"))
            .order_by()
            .values("network")
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


@login_required
def network_list(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    networks = scope(request.user, Network.objects.select_related("project")).prefetch_related(
        "subnets"
    )
    project_id = request.GET.get("project") or (
        str(shell.current_project.pk) if shell.current_project else ""
    )
    if project_id:
        try:
            networks = networks.filter(project_id=uuid.UUID(project_id))
        except ValueError:
            networks = networks.none()
    query = search_term(request)
    if query:
        networks = networks.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(pk__in=Subnet.objects.filter(cidr__startswith=query).values("network_id"))
        )
    networks = networks.annotate(port_count=_port_count())
    networks, _ = sorted_by(request, networks, NETWORK_SORTS, "name,pk")
    listing = paginate(request, networks)
    return render_page(
        request,
        "dashboard/networks/list.html",
        {
            "listing": listing,
            "project_id": project_id,
            "can_create": tenancy_access.writable_projects(request.user).exists(),
        },
        section="networks",
        shell=shell,
    )


def _detail_page(
    request: HttpRequest,
    network: Network,
    form: SubnetForm | None = None,
    status: int = 200,
    *,
    edit_form: NetworkForm | None = None,
    subnet_form: tuple[Any, SubnetForm] | None = None,
) -> HttpResponse:
    """The network's page; a form sent back with its errors shows open in place of the blank
    one (the new-subnet form, the network's own, or one subnet's)."""
    subnets: list[Any] = list(network.subnets.order_by("ip_version", "cidr"))  # + .edit_form
    for subnet in subnets:
        sent_back = subnet_form is not None and subnet_form[0] == subnet.pk
        subnet.edit_form = subnet_form[1] if subnet_form and sent_back else None
    port_total = scope(request.user, Port.objects.filter(network=network)).count()
    return render_page(
        request,
        "dashboard/networks/detail.html",
        {
            "network": network,
            "subnets": subnets,
            "port_total": port_total,
            "form": form or SubnetForm(initial={"enable_dhcp": True}),
            "edit_form": edit_form,
            "can_change": can_change_project(request.user, network.project_id),
            "adding": form is not None,
        },
        section="networks",
        status=status,
    )


def _network_for(request: HttpRequest, network_id: str) -> Network:
    return get_visible_or_404(
        Network.objects.select_related("project"), request.user, pk=network_id
    )


@login_required
def network_detail(request: HttpRequest, network_id: str) -> HttpResponse:
    return _detail_page(request, _network_for(request, network_id))


@login_required
@require_POST
def subnet_create(request: HttpRequest, network_id: str) -> HttpResponse:
    network = _network_for(request, network_id)
    deny_unless_changeable(request.user, network.project_id)
    form = SubnetForm(request.POST)

    def create() -> Done:
        subnet = actions.create_subnet(request.user, network, **_new_subnet_fields(form))
        return Done(_subnets_url(network), f"Subnet {subnet.cidr} created.")

    return submit(
        request, form, lambda status: _detail_page(request, network, form, status), create
    )


def _new_subnet_fields(form: SubnetForm) -> dict[str, Any]:
    """The action's keywords for a new subnet: what was left empty is left to the action's
    defaults (the gateway: "none" for no gateway)."""
    data = form.cleaned_data
    fields: dict[str, Any] = {
        "name": data.get("name", ""),
        "cidr": data.get("cidr", "").strip(),
        "enable_dhcp": bool(data.get("enable_dhcp")),
    }
    if data.get("ip_version"):
        fields["ip_version"] = data["ip_version"]
    gateway = data.get("gateway_ip", "").strip()
    if gateway.lower() == "none":
        fields["gateway_ip"] = None
    elif gateway:
        fields["gateway_ip"] = gateway
    servers = _addresses(data.get("dhcp_servers", ""))
    if servers:
        fields["dhcp_servers"] = servers
    return fields


def _subnets_url(network: Network) -> str:
    return reverse("dashboard:network", args=[network.pk]) + "#subnets"


@login_required
def network_new(request: HttpRequest) -> HttpResponse:
    form = NetworkForm(request.POST or None)

    def create(project: Project) -> Done:
        network = actions.create_network(request.user, project, **form.changes())
        name = network.name or network.pk
        return Done(
            reverse("dashboard:network", args=[network.pk]),
            f"Network {name} created. Add a subnet so its ports get addresses.",
        )

    return create_page(request, form, create, "dashboard/networks/new.html", section="networks")


@login_required
@require_POST
def network_update(request: HttpRequest, network_id: str) -> HttpResponse:
    network = _network_for(request, network_id)
    deny_unless_changeable(request.user, network.project_id)
    form = NetworkForm(request.POST)
    return save_edit(
        request,
        form,
        lambda status: _detail_page(request, network, status=status, edit_form=form),
        lambda: actions.update_network(request.user, network, **form.changes()),
        reverse("dashboard:network", args=[network.pk]),
        "Network saved.",
    )


@login_required
@require_POST
def network_delete(request: HttpRequest, network_id: str) -> HttpResponse:
    network = _network_for(request, network_id)
    deny_unless_changeable(request.user, network.project_id)
    return delete_or_refuse(  # NetworkInUse (409) says how many ports are still on it
        request,
        lambda: actions.delete_network(request.user, network),
        back=reverse("dashboard:network", args=[network.pk]),
        to=reverse("dashboard:networks"),
        deleted=f"Network {network.name or network.pk} deleted.",
    )


def _subnet_for(request: HttpRequest, network: Network, subnet_id: str) -> Subnet:
    return get_visible_or_404(Subnet.objects.filter(network=network), request.user, pk=subnet_id)


@login_required
@require_POST
def subnet_update(request: HttpRequest, network_id: str, subnet_id: str) -> HttpResponse:
    network = _network_for(request, network_id)
    subnet = _subnet_for(request, network, subnet_id)
    deny_unless_changeable(request.user, network.project_id)
    form = SubnetForm(request.POST)

    def save() -> Done:
        data = form.cleaned_data
        gateway = data.get("gateway_ip", "").strip()
        fields = {
            "name": data.get("name", ""),
            "enable_dhcp": bool(data.get("enable_dhcp")),
            "dhcp_servers": _addresses(data.get("dhcp_servers", "")),
            "gateway_ip": None if gateway.lower() in ("", "none") else gateway,
        }
        # A DHCP change reaches the hosts of the network's ports: the next page follows it.
        with following(request, f"subnet {subnet.cidr}"):
            actions.update_subnet(request.user, subnet, **fields)
        return Done(_subnets_url(network), f"Subnet {subnet.cidr} saved.")

    return submit(
        request,
        form,
        lambda status: _detail_page(request, network, status=status, subnet_form=(subnet.pk, form)),
        save,
    )


@login_required
@require_POST
def subnet_delete(request: HttpRequest, network_id: str, subnet_id: str) -> HttpResponse:
    network = _network_for(request, network_id)
    subnet = _subnet_for(request, network, subnet_id)
    deny_unless_changeable(request.user, network.project_id)
    url = _subnets_url(network)
    return delete_or_refuse(
        request,
        lambda: actions.delete_subnet(request.user, subnet),
        back=url,
        to=url,
        deleted=f"Subnet {subnet.cidr} deleted.",
        with_details=False,
    )


def _addresses(text: str) -> list[str]:
    """A list of addresses as typed: commas or spaces between them."""
    return [part for part in text.replace(",", " ").split() if part]
