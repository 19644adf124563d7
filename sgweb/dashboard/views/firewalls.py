"""Routers and FWaaS v2 (issue 16): routers with their interfaces, the firewall groups on them
and their rules' live counters; what the firewall pages share. Groups, policies and rules have
their own modules (firewall_groups, firewall_policies, firewall_rules)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

from sgweb.dashboard.guards import get_visible_or_404
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import following
from sgweb.fwaas.models import FirewallPolicy
from sgweb.hostsync.routers_publish import watch_rule_hits
from sgweb.live.routerhits import router_rules
from sgweb.routers.models import Router
from sgweb.tenancy.access import is_admin, scope, writable_projects

M = TypeVar("M", bound=Model)
T = TypeVar("T")

# A firewall change that reaches no router (a policy or group on no interface yet, a move
# that changed nothing).
ON_NO_ROUTER = "No router is affected: nothing to apply."


def followed(request: HttpRequest, what: str, change: Callable[[], T]) -> T:
    """Run a firewall action so that the next page follows its change to the network nodes
    ("Applied on network1 (revision 4) in 0.3 s", dashboard/delivery.py)."""
    with following(request, what, nothing=ON_NO_ROUTER):
        return change()


def list_page(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """A firewall list page (rules, policies, groups); its "new" button shows to whoever may
    change some project."""
    can_create = writable_projects(request.user).exists()
    return render_page(
        request, template, {**context, "can_create": can_create}, section="firewalls"
    )


def visible_or_shared(user: Any, queryset: QuerySet[M]) -> QuerySet[M]:
    """The user's projects' objects and the shared ones (as the API lists them)."""
    return queryset.filter(Q(pk__in=scope(user, queryset).values("pk")) | Q(shared=True))


def visible_or_404(user: Any, queryset: QuerySet[M], object_id: str) -> M:
    """One firewall object the user may see (their projects' or a shared one); anything else
    does not exist for them."""
    try:
        return visible_or_shared(user, queryset).get(pk=object_id)
    except (ObjectDoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such object") from error


def usable_in(user: Any, queryset: QuerySet[M], project_id: Any) -> QuerySet[M]:
    """What may be put into an object of `project_id`: that project's own or shared ones (an
    admin may use any), as the actions' `usable_by` decides."""
    if is_admin(user):
        return queryset
    return visible_or_shared(user, queryset).filter(Q(project_id=project_id) | Q(shared=True))


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
    return JsonResponse(
        {"at": (document or {}).get("at"), "rules": router_rules(document, str(router.pk))}
    )
