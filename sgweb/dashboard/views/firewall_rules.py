"""Firewall rule pages (FWaaS v2, issue 16): the list, a new rule, a rule with its policies,
its edit form and its delete button. Every change goes through the fwaas actions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard import usage
from sgweb.dashboard.forms import FirewallRuleForm, NewFirewallRuleForm
from sgweb.dashboard.guards import deny_unless_changeable
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import Done, create_page, delete_or_refuse, save_edit
from sgweb.dashboard.views.firewalls import followed, list_page, visible_or_404, visible_or_shared
from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallRule
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.access import can_change_project, is_admin
from sgweb.tenancy.models import Project

# What the page offers; the action is the authority on what it takes.
PROTOCOLS = (("any", "Any"), ("tcp", "TCP"), ("udp", "UDP"), ("icmp", "ICMP"))
ACTIONS = (
    ("allow", "Allow"),
    ("deny", "Deny: dropped silently"),
    ("reject", "Reject: the sender gets an ICMP unreachable or a TCP reset"),
)


def _choices(request: HttpRequest) -> dict[str, Any]:
    return {"protocols": PROTOCOLS, "actions": ACTIONS, "may_share": is_admin(request.user)}


@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    rules = visible_or_shared(
        request.user, FirewallRule.objects.select_related("project")
    ).prefetch_related("policy_links__policy")
    return list_page(
        request, "dashboard/firewalls/rules.html", {"rules": rules.order_by("name", "pk")}
    )


@login_required
def rule_new(request: HttpRequest) -> HttpResponse:
    initial = {"protocol": "tcp", "ip_version": "4", "action": "deny", "enabled": True}
    form = NewFirewallRuleForm(request.POST or None, initial=initial)

    def create(project: Project) -> Done:
        changes = form.changes(may_share=is_admin(request.user))
        rule = actions.create_rule(request.user, project, **changes)
        return Done(
            reverse("dashboard:firewall_rule", args=[rule.pk]),
            f"Firewall rule {rule} created: {rule.action}. Put it into a policy to use it.",
        )

    return create_page(
        request,
        form,
        create,
        "dashboard/firewalls/rule_new.html",
        section="firewalls",
        context=lambda: _choices(request),
        not_found_page=True,
    )


def _rule_for(request: HttpRequest, rule_id: str) -> FirewallRule:
    return visible_or_404(request.user, FirewallRule.objects.select_related("project"), rule_id)


def _rule_page(
    request: HttpRequest,
    rule: FirewallRule,
    status: int = 200,
    *,
    edit_form: FirewallRuleForm | None = None,
) -> HttpResponse:
    """The rule's page; a sent-back edit form shows open with its errors."""
    links = rule.policy_links.select_related("policy").order_by("policy__name", "position")
    if edit_form is None:
        fields = {field: getattr(rule, field) for field in actions.RULE_FIELDS}
        edit_form = FirewallRuleForm(initial={**fields, "protocol": rule.protocol or "any"})
        editing = False
    else:
        editing = True
    # Kept hits: a shared rule's add up other projects' routers, so its own project's only.
    window = usage.window_key(request)
    readable = tenancy_access.can_see_project(request.user, rule.project_id)
    spark = usage.firewall_usage([rule], window) if readable else None
    return render_page(
        request,
        "dashboard/firewalls/rule.html",
        {
            "rule": rule,
            "spark": spark,
            "window": window,
            "window_choices": usage.WINDOW_CHOICES,
            "links": list(links),
            "form": edit_form,
            "editing": editing,
            "can_change": can_change_project(request.user, rule.project_id),
            **_choices(request),
        },
        section="firewalls",
        status=status,
    )


@login_required
def rule_detail(request: HttpRequest, rule_id: str) -> HttpResponse:
    return _rule_page(request, _rule_for(request, rule_id))


@login_required
@require_POST
def rule_update(request: HttpRequest, rule_id: str) -> HttpResponse:
    rule = _rule_for(request, rule_id)
    deny_unless_changeable(request.user, rule.project_id)
    form = FirewallRuleForm(request.POST)
    return save_edit(
        request,
        form,
        lambda status: _rule_page(request, rule, status, edit_form=form),
        lambda: followed(
            request,
            f"firewall rule {rule} saved",
            lambda: actions.update_rule(
                request.user, rule, **form.changes(may_share=is_admin(request.user))
            ),
        ),
        reverse("dashboard:firewall_rule", args=[rule.pk]),
        "Firewall rule saved; the routers whose policies hold it follow.",
        not_found_page=True,
    )


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: str) -> HttpResponse:
    rule = _rule_for(request, rule_id)
    deny_unless_changeable(request.user, rule.project_id)

    def in_use() -> str:
        # Say by which policies, so the admin knows where to remove it first.
        names = ", ".join(str(link.policy) for link in rule.policy_links.select_related("policy"))
        return f"Firewall rule {rule} is used by policy {names}: remove it from there first."

    return delete_or_refuse(
        request,
        lambda: actions.delete_rule(request.user, rule),
        back=reverse("dashboard:firewall_rule", args=[rule.pk]),
        to=reverse("dashboard:firewall_rules"),
        deleted=f"Firewall rule {rule} deleted.",
        in_use=in_use,
    )
