"""Security group pages: the list, a group with its rules, and the changes made from them."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard import usage
from sgweb.dashboard.forms import NewSecurityGroupForm, RuleForm, SecurityGroupForm
from sgweb.dashboard.guards import deny_unless_changeable, get_visible_or_404
from sgweb.dashboard.listing import paginate, search_term, sorted_by
from sgweb.dashboard.livepaint import group_hits
from sgweb.dashboard.presentation import PROTOCOL_CHOICES, RULE_PRESETS
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.dashboard.views.common import (
    Done,
    create_page,
    delete_or_refuse,
    following,
    save_edit,
    submit,
)
from sgweb.networks.models import Port, PortSecurityGroup
from sgweb.security import actions
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.access import can_change_project, scope
from sgweb.tenancy.models import Project

GROUP_SORTS = {
    "name": "name",
    "project": "project__name",
    "rules": "rule_count",
    "ports": "port_count",
    "updated": "updated_at",
}
PORTS_SHOWN_ON_GROUP = 25


def _count_of(model: Any, field: str) -> Coalesce:
    """A correlated COUNT, so two counts on one list do not multiply each other's joins."""
    return Coalesce(
        Subquery(
            model.objects.filter(**{field: OuterRef("pk")})
            .order_by()
            .values(field)
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


def _project_filter(request: HttpRequest, shell: Any) -> str:
    wanted = request.GET.get("project", "")
    if wanted:
        return wanted
    return str(shell.current_project.pk) if shell.current_project else ""


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    groups = scope(request.user, SecurityGroup.objects.select_related("project"))
    project_id = _project_filter(request, shell)
    if project_id:
        groups = groups.filter(project_id=project_id) if _uuid_ok(project_id) else groups.none()
    query = search_term(request)
    if query:
        groups = groups.filter(
            Q(name__icontains=query) | Q(description__icontains=query) | _id_prefix(query)
        )
    groups = groups.annotate(
        rule_count=_count_of(SecurityGroupRule, "security_group"),
        port_count=_count_of(PortSecurityGroup, "security_group"),
    )
    groups, _ = sorted_by(request, groups, GROUP_SORTS, "project__name,name,pk")
    listing = paginate(request, groups)
    writable = set(tenancy_access.writable_projects(request.user).values_list("pk", flat=True))
    return render_page(
        request,
        "dashboard/security_groups/list.html",
        {
            "listing": listing,
            "project_id": project_id,
            "can_create": bool(writable),
        },
        section="security_groups",
        shell=shell,
    )


def _uuid_ok(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _id_prefix(query: str) -> Q:
    """Admins paste ids or their first characters (chain names carry the first ten)."""
    compact = query.replace("-", "").lower()
    if 4 <= len(compact) <= 32 and all(c in "0123456789abcdef" for c in compact):
        if len(compact) == 32:
            return Q(pk=compact)
        # A UUID column compares as text on both SQLite and PostgreSQL only through a cast;
        # a range on the hex prefix keeps the primary-key index usable.
        low = compact.ljust(32, "0")
        high = compact.ljust(32, "f")
        return Q(pk__gte=low, pk__lte=high)
    return Q(pk__in=[])


@login_required
def group_new(request: HttpRequest) -> HttpResponse:
    form = NewSecurityGroupForm(request.POST or None)

    def create(project: Project) -> Done:
        group = actions.create_security_group(request.user, project, **form.changes())
        kind = "" if group.stateful else " stateless"
        return Done(
            reverse("dashboard:security_group", args=[group.pk]),
            f"Security group {group.name}{kind} created with Neutron's two allow-all egress rules.",
        )

    return create_page(
        request,
        form,
        create,
        "dashboard/security_groups/new.html",
        section="security_groups",
        not_found_page=True,
    )


def _group_for(request: HttpRequest, group_id: str) -> SecurityGroup:
    return get_visible_or_404(
        SecurityGroup.objects.select_related("project"), request.user, pk=group_id
    )


def _detail_context(request: HttpRequest, group: SecurityGroup) -> dict[str, Any]:
    rules: list[Any] = list(  # SecurityGroupRules that also carry .hit for the template
        group.rules.select_related("remote_group").order_by(
            # Ingress first ("-direction"): that is what admins read a group for.
            "-direction",
            "ethertype",
            "protocol",
            "port_range_min",
            "created_at",
            "pk",
        )
    )
    ports_qs = scope(
        request.user, Port.objects.filter(group_links__security_group=group)
    ).select_related("host", "network", "project")
    port_total = ports_qs.count()
    ports = list(
        ports_qs.prefetch_related("fixed_ips").order_by("name", "pk")[:PORTS_SHOWN_ON_GROUP]
    )
    remote_choices = list(
        SecurityGroup.objects.filter(project_id=group.project_id)
        .order_by("name")
        .only("id", "name")
    )
    referenced_by = list(
        scope(request.user, SecurityGroup.objects.all())
        .filter(rules__remote_group=group)
        .exclude(pk=group.pk)
        .distinct()
        .only("id", "name")[:20]
    )
    hits = group_hits(group)
    # One reverse() for every rule's delete form (100 of them were a tenth of the page).
    placeholder = "00000000-0000-0000-0000-000000000000"
    delete_url = reverse("dashboard:rule_delete", args=(group.pk, placeholder))
    for rule in rules:
        rule.hit = hits.get(str(rule.pk))
        rule.delete_url = delete_url.replace(placeholder, str(rule.pk))
    window = usage.window_key(request)
    spark = usage.group_usage(rules, window)  # sets rule.kept: what the control plane kept
    hits_sort = request.GET.get("sort", "")
    if hits_sort in ("hits", "-hits"):
        # Unknown counts sort as below zero, so "most hit first" ends with the unobserved.
        rules.sort(
            key=lambda rule: rule.hit.packets if rule.hit else -1, reverse=hits_sort == "-hits"
        )
    return {
        "group": group,
        "rules": rules,
        "hits_sort": hits_sort,
        "spark": spark,
        "window": window,
        "window_choices": usage.WINDOW_CHOICES,
        "ingress_count": sum(1 for rule in rules if rule.direction == "ingress"),
        "egress_count": sum(1 for rule in rules if rule.direction == "egress"),
        "ports": ports,
        "port_total": port_total,
        "remote_choices": remote_choices,
        "referenced_by": referenced_by,
        "can_change": can_change_project(request.user, group.project_id),
        # Neutron lets a group switch between stateful and stateless only while no port uses
        # it (counted over every project: an admin's port elsewhere counts too).
        "statefulness_locked": group.port_links.exists(),
        "presets": RULE_PRESETS,
        "protocol_choices": PROTOCOL_CHOICES,
    }


def _detail_page(
    request: HttpRequest,
    group: SecurityGroup,
    status: int = 200,
    *,
    rule_form: RuleForm | None = None,
    edit_form: SecurityGroupForm | None = None,
) -> HttpResponse:
    """The group's page; a form sent back with its errors takes the place of the blank one (and
    a sent-back edit form shows open)."""
    context = _detail_context(request, group)
    if rule_form is None:
        # A link may fill the form in (the drop log's "Allow this"); nothing is added until
        # the admin submits it.
        prefill = {key: request.GET[key] for key in RULE_PREFILL if request.GET.get(key)}
        rule_form = RuleForm(initial={"direction": "ingress", "ethertype": "IPv4", **prefill})
    context["rule_form"] = rule_form
    if edit_form is None:
        context["edit_form"] = SecurityGroupForm(
            initial={
                "name": group.name,
                "description": group.description,
                "stateful": "true" if group.stateful else "false",
            }
        )
    else:
        context["edit_form"] = edit_form
        context["editing"] = True
    return render_page(
        request,
        "dashboard/security_groups/detail.html",
        context,
        section="security_groups",
        status=status,
    )


RULE_PREFILL = (
    "direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_kind",
    "remote_ip_prefix", "remote_group_id", "description",
)  # fmt: skip


@login_required
def group_detail(request: HttpRequest, group_id: str) -> HttpResponse:
    return _detail_page(request, _group_for(request, group_id))


@login_required
@require_POST
def rule_create(request: HttpRequest, group_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    deny_unless_changeable(request.user, group.project_id)
    form = RuleForm(request.POST)
    url = reverse("dashboard:security_group", args=[group.pk])

    def add() -> Done:
        created: list[SecurityGroupRule] = []
        # A preset that stands for several rules (DNS) adds all of them or none.
        with following(request, f"{group.name}: new rule") as followed, transaction.atomic():
            for fields in form.rule_fields():
                created.append(actions.create_security_group_rule(request.user, group, **fields))
            followed.what = f"{group.name}: {', '.join(str(rule) for rule in created)}"
        names = ", ".join(str(rule) for rule in created)
        return Done(f"{url}?added={','.join(str(r.pk) for r in created)}#rules", f"Added {names}.")

    # A remote group that does not exist is the form's problem, not a missing page.
    return submit(
        request, form, lambda status: _detail_page(request, group, status, rule_form=form), add
    )


@login_required
@require_POST
def rule_delete(request: HttpRequest, group_id: str, rule_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    rule = get_visible_or_404(
        SecurityGroupRule.objects.filter(security_group=group), request.user, pk=rule_id
    )
    deny_unless_changeable(request.user, group.project_id)
    url = reverse("dashboard:security_group", args=[group.pk])
    words = f"{group.name}: {rule}"

    def delete() -> None:
        with following(request, words):
            actions.delete_security_group_rule(request.user, rule)

    return delete_or_refuse(
        request,
        delete,
        back=url,
        to=f"{url}#rules",
        deleted=f"Deleted {words}.",
        with_details=False,
    )


@login_required
@require_POST
def group_update(request: HttpRequest, group_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    deny_unless_changeable(request.user, group.project_id)
    form = SecurityGroupForm(request.POST)
    return save_edit(
        request,
        form,
        lambda status: _detail_page(request, group, status, edit_form=form),
        lambda: actions.update_security_group(request.user, group, **form.changes()),
        reverse("dashboard:security_group", args=[group.pk]),
        "Security group saved.",
        not_found_page=True,
    )


@login_required
@require_POST
def group_delete(request: HttpRequest, group_id: str) -> HttpResponse:
    group = _group_for(request, group_id)
    deny_unless_changeable(request.user, group.project_id)
    return delete_or_refuse(
        request,
        lambda: actions.delete_security_group(request.user, group),
        back=reverse("dashboard:security_group", args=[group.pk]),
        to=reverse("dashboard:security_groups"),
        deleted=f"Security group {group.name} deleted.",
    )
