"""Firewall group pages (FWaaS v2, issue 16): the list, a new group, a group with its edit form
(policies, router interface ports, admin state) and its delete button. Every change goes
through the fwaas actions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard.forms import FirewallGroupForm, NewFirewallGroupForm, sharing
from sgweb.dashboard.guards import deny_unless_changeable
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import Done, create_page, delete_or_refuse, submit
from sgweb.dashboard.views.firewalls import (
    followed,
    list_page,
    usable_in,
    visible_or_404,
    visible_or_shared,
)
from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy
from sgweb.fwaas.representation import group_status
from sgweb.networks.models import Port
from sgweb.routers.choices import ROUTER_INTERFACE
from sgweb.tenancy.access import can_change_project, is_admin, scope
from sgweb.tenancy.models import Project


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    groups = visible_or_shared(
        request.user,
        FirewallGroup.objects.select_related("project", "ingress_policy", "egress_policy"),
    ).prefetch_related("port_links__port__router_interface__router__host")
    rows = [
        {"group": group, "status": group_status(group), "ports": list(group.port_links.all())}
        for group in groups.order_by("name", "pk")
    ]
    return list_page(request, "dashboard/firewalls/groups.html", {"rows": rows})


def _interfaces(request: HttpRequest, project_id: Any = None) -> list[Port]:
    """Router interface ports the user may put into a group (of `project_id`: that project's
    only, unless an admin), each with its router, subnet and the group it is in now."""
    ports: QuerySet[Port] = scope(
        request.user, Port.objects.filter(device_owner=ROUTER_INTERFACE)
    ).filter(router_interface__isnull=False)
    if project_id is not None and not is_admin(request.user):
        ports = ports.filter(project_id=project_id)
    ports = ports.select_related(
        "project", "router_interface__router", "router_interface__subnet__network",
        "firewall_group_link__group",
    )  # fmt: skip
    return list(ports.order_by("router_interface__router__name", "router_interface__subnet__cidr"))


def _policy_choices(request: HttpRequest, project_id: Any = None) -> QuerySet[FirewallPolicy]:
    policies = FirewallPolicy.objects.select_related("project")
    if project_id is None:
        return visible_or_shared(request.user, policies).order_by("name", "pk")
    return usable_in(request.user, policies, project_id).order_by("name", "pk")


def _chosen(request: HttpRequest, form: FirewallGroupForm, project_id: Any) -> dict[str, Any]:
    """The action's keywords from the form: the named policies and ports looked up among what
    the page offered (a policy named but not offered is the form's error)."""
    data = form.cleaned_data
    choices = {str(policy.pk): policy for policy in _policy_choices(request, project_id)}
    values: dict[str, Any] = {"name": data["name"], "description": data["description"]}
    for field in ("ingress_policy", "egress_policy"):
        wanted = data.get(field) or ""
        if wanted and wanted not in choices:
            form.add_error(field, "Choose a policy of this project or a shared one.")
        values[field] = choices.get(wanted)
    ports = {str(port.pk): port for port in _interfaces(request)}
    values["ports"] = [ports[port_id] for port_id in data.get("ports") or []]
    foreign = [
        p for p in values["ports"] if p.project_id != project_id and not is_admin(request.user)
    ]
    if foreign:
        form.add_error("ports", "Choose router interfaces of the group's project.")
    values["admin_state_up"] = bool(data.get("admin_state_up"))
    return values | sharing(form, may_share=is_admin(request.user))


@login_required
def group_new(request: HttpRequest) -> HttpResponse:
    interfaces = _interfaces(request)
    form = NewFirewallGroupForm(
        request.POST or None,
        port_ids=[str(port.pk) for port in interfaces],
        initial={"admin_state_up": True},
    )

    def create(project: Project) -> Done | None:
        values = _chosen(request, form, project.pk)
        if form.errors:
            return None
        group = followed(
            request,
            f"firewall group {values['name'] or '(unnamed)'} created",
            lambda: actions.create_group(request.user, project, **values),
        )
        return Done(
            reverse("dashboard:firewall_group", args=[group.pk]),
            f"Firewall group {group} created on {len(values['ports'])} router interface(s).",
        )

    return create_page(
        request,
        form,
        create,
        "dashboard/firewalls/group_new.html",
        section="firewalls",
        context=lambda: {
            "policies": _policy_choices(request),
            "interfaces": interfaces,
            "picked": form["ports"].value() or [],
            "may_share": is_admin(request.user),
        },
    )


def _group_for(request: HttpRequest, group_id: str) -> FirewallGroup:
    queryset = FirewallGroup.objects.select_related("project", "ingress_policy", "egress_policy")
    return visible_or_404(request.user, queryset, group_id)


def _group_page(
    request: HttpRequest,
    group: FirewallGroup,
    status: int = 200,
    *,
    edit_form: FirewallGroupForm | None = None,
) -> HttpResponse:
    """The group's page; a sent-back edit form shows open with its errors."""
    links = list(
        group.port_links.select_related(
            "port__router_interface__router__host", "port__router_interface__subnet__network"
        )
    )
    if edit_form is None:
        edit_form = FirewallGroupForm(initial={
            "name": group.name, "description": group.description,
            "ingress_policy": str(group.ingress_policy_id or ""),
            "egress_policy": str(group.egress_policy_id or ""),
            "ports": [str(link.port_id) for link in links],
            "admin_state_up": group.admin_state_up, "shared": group.shared,
        })  # fmt: skip
        editing = False
    else:
        editing = True
    return render_page(
        request,
        "dashboard/firewalls/group.html",
        {
            "group": group,
            "status": group_status(group),
            "links": links,
            "form": edit_form,
            "editing": editing,
            "picked": edit_form["ports"].value() or [],
            "policies": _policy_choices(request, group.project_id),
            "interfaces": _interfaces(request, group.project_id),
            "can_change": can_change_project(request.user, group.project_id),
            "may_share": is_admin(request.user),
        },
        section="firewalls",
        status=status,
    )


@login_required
def group_detail(request: HttpRequest, group_id: str) -> HttpResponse:
    return _group_page(request, _group_for(request, group_id))


@login_required
@require_POST
def group_update(request: HttpRequest, group_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    deny_unless_changeable(request.user, group.project_id)
    interfaces = _interfaces(request, group.project_id)
    form = FirewallGroupForm(request.POST, port_ids=[str(port.pk) for port in interfaces])

    def save() -> Done | None:
        values = _chosen(request, form, group.project_id)
        if form.errors:
            return None
        followed(
            request,
            f"firewall group {group} saved",
            lambda: actions.update_group(request.user, group, **values),
        )
        return Done(
            reverse("dashboard:firewall_group", args=[group.pk]),
            "Firewall group saved; the network nodes of its routers follow.",
        )

    return submit(
        request,
        form,
        lambda status: _group_page(request, group, status, edit_form=form),
        save,
        not_found_page=True,
    )


@login_required
@require_POST
def group_delete(request: HttpRequest, group_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    deny_unless_changeable(request.user, group.project_id)
    return delete_or_refuse(
        request,
        lambda: followed(
            request,
            f"firewall group {group} deleted",
            lambda: actions.delete_group(request.user, group),
        ),
        back=reverse("dashboard:firewall_group", args=[group.pk]),
        to=reverse("dashboard:firewall_groups"),
        deleted=f"Firewall group {group} deleted; its router interfaces pass everything again.",
    )
