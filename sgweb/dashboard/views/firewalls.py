"""Routers and FWaaS v2 (issue 16): routers with their interfaces and the firewall groups on
them, firewall groups, policies (rules in order, moved up or down through the actions) and
firewall rules."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard.guards import deny_unless_changeable, get_visible_or_404
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import button_refused, done
from sgweb.fwaas import actions as fwaas_actions
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from sgweb.fwaas.representation import group_status
from sgweb.hostsync.routers_publish import watch_rule_hits
from sgweb.routers.models import Router
from sgweb.tenancy.access import can_change_project, scope
from sgweb.tenancy.errors import ActionError

M = TypeVar("M", bound=Model)


def _visible_or_shared(user: Any, queryset: QuerySet[M]) -> QuerySet[M]:
    """The user's projects' objects and the shared ones (as the API lists them)."""
    return queryset.filter(Q(pk__in=scope(user, queryset).values("pk")) | Q(shared=True))


@login_required
def router_list(request: HttpRequest) -> HttpResponse:
    routers = scope(request.user, Router.objects.select_related("project", "host"))
    return render_page(
        request,
        "dashboard/firewalls/routers.html",
        {"routers": routers.prefetch_related("interfaces__subnet__network").order_by("name")},
        section="routers",
    )


@login_required
def router_detail(request: HttpRequest, router_id: str) -> HttpResponse:
    router = get_visible_or_404(
        Router.objects.select_related("project", "host"), request.user, pk=router_id
    )
    interfaces = list(
        router.interfaces.select_related(
            "subnet__network", "port", "port__firewall_group_link__group"
        ).order_by("subnet__cidr")
    )
    rows = []
    for interface in interfaces:
        link = getattr(interface.port, "firewall_group_link", None)
        rows.append({"interface": interface, "group": link.group if link else None})
    return render_page(
        request,
        "dashboard/firewalls/router.html",
        {"router": router, "rows": rows, "policies": _policies_of(rows)},
        section="routers",
    )


def _policies_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies of the groups on the router's interfaces, each once, rules in order: the
    rows the live counters fill in."""
    seen: dict[Any, dict[str, Any]] = {}
    for row in rows:
        group = row["group"]
        if group is None:
            continue
        for direction, policy_id in (("ingress", group.ingress_policy_id),
                                     ("egress", group.egress_policy_id)):  # fmt: skip
            if policy_id is None:
                continue
            entry = seen.get(policy_id)
            if entry is None:
                policy = FirewallPolicy.objects.get(pk=policy_id)
                links = policy.rule_links.select_related("rule").order_by("position")
                entry = seen[policy_id] = {"policy": policy, "rules": [link.rule for link in links],
                                           "uses": []}  # fmt: skip
            entry["uses"].append(f"{group.name or group.pk} {direction}")
    return list(seen.values())


@login_required
def router_hits(request: HttpRequest, router_id: str) -> JsonResponse:
    """The router's firewall rule counters, as its network node's agent last read them (the
    request also keeps the agent reading them for a few seconds: see `watch_rule_hits`)."""
    router = get_visible_or_404(Router.objects.select_related("host"), request.user, pk=router_id)
    if router.host is None:
        return JsonResponse({"at": None, "rules": {}, "error": "no network node"})
    try:
        document = watch_rule_hits(router.host.name)
    except Exception as exc:  # Redis away: the page says so and keeps polling
        return JsonResponse({"at": None, "rules": {}, "error": f"counters unavailable: {exc}"})
    routers = (document or {}).get("routers", {})
    rules = {
        rule_id: {"packets": counts[0], "bytes": counts[1]}
        for rule_id, counts in routers.get(str(router.pk), {}).items()
    }
    return JsonResponse({"at": (document or {}).get("at"), "rules": rules})


@login_required
def group_list(request: HttpRequest) -> HttpResponse:
    groups = _visible_or_shared(
        request.user,
        FirewallGroup.objects.select_related("project", "ingress_policy", "egress_policy"),
    ).prefetch_related("port_links__port__router_interface__router__host")
    rows = [
        {"group": group, "status": group_status(group), "ports": list(group.port_links.all())}
        for group in groups.order_by("name", "pk")
    ]
    return render_page(
        request, "dashboard/firewalls/groups.html", {"rows": rows}, section="firewalls"
    )


@login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = _visible_or_shared(
        request.user, FirewallPolicy.objects.select_related("project")
    ).prefetch_related("rule_links")
    return render_page(
        request,
        "dashboard/firewalls/policies.html",
        {"policies": policies.order_by("name", "pk")},
        section="firewalls",
    )


def _visible_policy(request: HttpRequest, policy_id: str) -> FirewallPolicy:
    policies = _visible_or_shared(request.user, FirewallPolicy.objects.select_related("project"))
    try:
        return policies.get(pk=policy_id)
    except (FirewallPolicy.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such policy") from error


@login_required
def policy_detail(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _visible_policy(request, policy_id)
    rules = policy.ordered_rules()
    # Each row knows its neighbours, so the up/down buttons can say what the move changes.
    rows = [
        {
            "rule": rule,
            "above": rules[index - 1] if index else None,
            "below": rules[index + 1] if index + 1 < len(rules) else None,
        }
        for index, rule in enumerate(rules)
    ]
    groups = FirewallGroup.objects.filter(Q(ingress_policy=policy) | Q(egress_policy=policy))
    return render_page(
        request,
        "dashboard/firewalls/policy.html",
        {
            "policy": policy,
            "rows": rows,
            "groups": scope(request.user, groups).order_by("name"),
            "can_change": can_change_project(request.user, policy.project_id),
        },
        section="firewalls",
    )


@require_POST
@login_required
def policy_move_rule(request: HttpRequest, policy_id: str, rule_id: str) -> HttpResponse:
    """The up/down buttons: one place earlier (matched sooner) or later, via the action."""
    policy = _visible_policy(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    url = reverse("dashboard:firewall_policy", args=[policy.pk])
    rule = next((r for r in policy.ordered_rules() if str(r.pk) == rule_id), None)
    if rule is None:
        raise Http404("No such rule in this policy")
    offset = -1 if request.POST.get("direction") == "up" else 1
    try:
        fwaas_actions.move_rule(request.user, policy, rule, offset=offset)
    except ActionError as error:
        return button_refused(request, url, error)
    where = "up" if offset < 0 else "down"
    return done(request, url, f"Moved rule {rule.name or rule.pk} {where}.")


@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = _visible_or_shared(
        request.user, FirewallRule.objects.select_related("project")
    ).prefetch_related("policy_links__policy")
    return render_page(
        request,
        "dashboard/firewalls/rules.html",
        {"rules": rules.order_by("name", "pk")},
        section="firewalls",
    )
