"""Firewall policy pages (FWaaS v2, issue 16): the list, a new policy with its rules picked in
order, a policy's rules (moved up or down, inserted before or after another, removed), its
name and description, and its delete button. Every change goes through the fwaas actions."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard import usage
from sgweb.dashboard.forms import (
    FirewallPolicyForm,
    InsertFirewallRuleForm,
    NewFirewallPolicyForm,
    sharing,
)
from sgweb.dashboard.guards import deny_unless_changeable
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import (
    Done,
    button_change,
    create_page,
    delete_or_refuse,
    save_edit,
    submit,
)
from sgweb.dashboard.views.firewalls import (
    followed,
    list_page,
    usable_in,
    visible_or_404,
    visible_or_shared,
)
from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from sgweb.tenancy.access import can_change_project, can_see_project, is_admin, scope
from sgweb.tenancy.models import Project

INSERT_PLACES = (
    ("bottom", "At the bottom (matched last)"),
    ("top", "At the top (matched first)"),
    ("before", "Before the rule chosen below"),
    ("after", "After the rule chosen below"),
)
INSERT_ALIASES = {"insert_before": "reference", "insert_after": "reference"}


@login_required
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = visible_or_shared(
        request.user, FirewallPolicy.objects.select_related("project")
    ).prefetch_related("rule_links")
    context = {"policies": policies.order_by("name", "pk")}
    return list_page(request, "dashboard/firewalls/policies.html", context)


@login_required
def policy_new(request: HttpRequest) -> HttpResponse:
    candidates = list(
        visible_or_shared(request.user, FirewallRule.objects.select_related("project")).order_by(
            "project__name", "name", "pk"
        )
    )
    form = NewFirewallPolicyForm(
        request.POST or None, rule_ids=[str(rule.pk) for rule in candidates]
    )

    def create(project: Project) -> Done | None:
        by_id = {str(rule.pk): rule for rule in candidates}
        rules = [by_id[rule_id] for rule_id in form.ordered_rule_ids()]
        if not _rules_usable(request, form, project, rules):
            return None
        data = form.cleaned_data
        policy = actions.create_policy(
            request.user, project, name=data["name"], description=data["description"],
            firewall_rules=rules, **sharing(form, may_share=is_admin(request.user)),
        )  # fmt: skip
        return Done(
            reverse("dashboard:firewall_policy", args=[policy.pk]),
            f"Firewall policy {policy} created with {len(rules)} rule(s).",
        )

    return create_page(
        request,
        form,
        create,
        "dashboard/firewalls/policy_new.html",
        section="firewalls",
        context=lambda: {
            "candidates": _picker_rows(form, candidates),
            "may_share": is_admin(request.user),
        },
    )


def _rules_usable(
    request: HttpRequest, form: NewFirewallPolicyForm, project: Project, rules: list[FirewallRule]
) -> bool:
    """False, with the error on the form, when a picked rule is another project's and not
    shared: said here in the form's words, where the action would answer "could not be found"."""
    usable = usable_in(request.user, FirewallRule.objects.all(), project.pk)
    ids = set(usable.filter(pk__in=[rule.pk for rule in rules]).values_list("pk", flat=True))
    foreign = [str(rule) for rule in rules if rule.pk not in ids]
    if foreign:
        form.add_error("firewall_rules", f"Rule {', '.join(foreign)} is of another project "
                       f"and not shared: a policy of {project.name} cannot hold it.")  # fmt: skip
    return not foreign


def _picker_rows(form: NewFirewallPolicyForm, candidates: list[FirewallRule]) -> list[Any]:
    """The new-policy page's rule picker: each rule, whether it is ticked and the position
    typed next to it (kept when the form comes back with errors)."""
    picked = {str(value) for value in form["firewall_rules"].value() or []}
    return [
        {"rule": rule, "picked": str(rule.pk) in picked,
         "position": form.data.get(f"position-{rule.pk}", "")}
        for rule in candidates
    ]  # fmt: skip


def _policy_for(request: HttpRequest, policy_id: str) -> FirewallPolicy:
    queryset = FirewallPolicy.objects.select_related("project")
    return visible_or_404(request.user, queryset, policy_id)


def _policy_page(
    request: HttpRequest,
    policy: FirewallPolicy,
    status: int = 200,
    *,
    edit_form: FirewallPolicyForm | None = None,
    insert_form: InsertFirewallRuleForm | None = None,
) -> HttpResponse:
    """The policy's page; a sent-back form (edit or insert) shows with its errors."""
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
    # Kept hits of the rules the user may read (a shared rule of another project: none).
    window = usage.window_key(request)
    readable = [rule for rule in rules if can_see_project(request.user, rule.project_id)]
    spark = usage.firewall_usage(readable, window)
    groups = FirewallGroup.objects.filter(Q(ingress_policy=policy) | Q(egress_policy=policy))
    insertable = usable_in(request.user, FirewallRule.objects.all(), policy.project_id).exclude(
        pk__in=[rule.pk for rule in rules]
    )
    initial = {"name": policy.name, "description": policy.description, "shared": policy.shared}
    return render_page(
        request,
        "dashboard/firewalls/policy.html",
        {
            "policy": policy,
            "rows": rows,
            "spark": spark,
            "window": window,
            "window_choices": usage.WINDOW_CHOICES,
            "groups": scope(request.user, groups).order_by("name"),
            "can_change": can_change_project(request.user, policy.project_id),
            "edit_form": edit_form or FirewallPolicyForm(initial=initial),
            "editing": edit_form is not None,
            "may_share": is_admin(request.user),
            "insert_form": insert_form or InsertFirewallRuleForm(initial={"where": "bottom"}),
            "insertable": insertable.order_by("name", "pk"),
            "insert_places": INSERT_PLACES,
        },
        section="firewalls",
        status=status,
    )


@login_required
def policy_detail(request: HttpRequest, policy_id: str) -> HttpResponse:
    return _policy_page(request, _policy_for(request, policy_id))


def _rule_in(policy: FirewallPolicy, rule_id: str) -> FirewallRule:
    rule = next((r for r in policy.ordered_rules() if str(r.pk) == rule_id), None)
    if rule is None:
        raise Http404("No such rule in this policy")
    return rule


@require_POST
@login_required
def policy_move_rule(request: HttpRequest, policy_id: str, rule_id: str) -> HttpResponse:
    """The up/down buttons: one place earlier (matched sooner) or later, via the action."""
    policy = _policy_for(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    url = reverse("dashboard:firewall_policy", args=[policy.pk])
    rule = _rule_in(policy, rule_id)
    offset = -1 if request.POST.get("direction") == "up" else 1
    where = "up" if offset < 0 else "down"
    return button_change(
        request,
        lambda: followed(
            request,
            f"{policy}: rule {rule} moved",
            lambda: actions.move_rule(request.user, policy, rule, offset=offset),
        ),
        back=url,
        to=url,
        message=f"Moved rule {rule} {where}.",
    )


@require_POST
@login_required
def policy_remove_rule(request: HttpRequest, policy_id: str, rule_id: str) -> HttpResponse:
    policy = _policy_for(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    url = reverse("dashboard:firewall_policy", args=[policy.pk])
    rule = _rule_in(policy, rule_id)
    return button_change(
        request,
        lambda: followed(
            request,
            f"{policy}: rule {rule} removed",
            lambda: actions.remove_rule(request.user, policy, rule),
        ),
        back=url,
        to=url,
        message=f"Removed rule {rule} from {policy}; the rule itself is kept.",
    )


def _insert_keywords(
    form: InsertFirewallRuleForm, rules: list[FirewallRule]
) -> dict[str, FirewallRule | None] | None:
    """The action's insert_before / insert_after for where the form puts the rule; None, with
    the error on the form, when it names no rule of the policy."""
    where = form.cleaned_data.get("where") or "bottom"
    if where == "top" or (where == "bottom" and not rules):
        return {}
    if where == "bottom":
        return {"insert_after": rules[-1]}
    reference = next((r for r in rules if str(r.pk) == form.cleaned_data.get("reference")), None)
    if where not in ("before", "after") or reference is None:
        form.add_error("reference", "Choose a rule of this policy to insert next to.")
        return None
    return {f"insert_{where}": reference}


@require_POST
@login_required
def policy_insert_rule(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _policy_for(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    form = InsertFirewallRuleForm(request.POST)

    def insert() -> Done | None:
        rule = _usable_rule(request, policy, form.cleaned_data["firewall_rule_id"])
        if rule is None:
            form.add_error("firewall_rule_id", "Choose a rule of this project or a shared one.")
            return None
        keywords = _insert_keywords(form, policy.ordered_rules())
        if keywords is None:
            return None
        followed(
            request,
            f"{policy}: rule {rule} inserted",
            lambda: actions.insert_rule(request.user, policy, rule, **keywords),
        )
        url = reverse("dashboard:firewall_policy", args=[policy.pk])
        return Done(f"{url}#rules", f"Inserted rule {rule} into {policy}.")

    return submit(
        request,
        form,
        lambda status: _policy_page(request, policy, status, insert_form=form),
        insert,
        aliases=INSERT_ALIASES,
    )


def _usable_rule(request: HttpRequest, policy: FirewallPolicy, rule_id: str) -> FirewallRule | None:
    usable = usable_in(request.user, FirewallRule.objects.all(), policy.project_id)
    try:
        return usable.filter(pk=uuid.UUID(rule_id)).first()
    except ValueError:
        return None


@login_required
@require_POST
def policy_update(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _policy_for(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    form = FirewallPolicyForm(request.POST)
    return save_edit(
        request,
        form,
        lambda status: _policy_page(request, policy, status, edit_form=form),
        lambda: actions.update_policy(
            request.user,
            policy,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            **sharing(form, may_share=is_admin(request.user)),
        ),
        reverse("dashboard:firewall_policy", args=[policy.pk]),
        "Firewall policy saved.",
        not_found_page=True,
    )


@login_required
@require_POST
def policy_delete(request: HttpRequest, policy_id: str) -> HttpResponse:
    policy = _policy_for(request, policy_id)
    deny_unless_changeable(request.user, policy.project_id)
    return delete_or_refuse(
        request,
        lambda: actions.delete_policy(request.user, policy),
        back=reverse("dashboard:firewall_policy", args=[policy.pk]),
        to=reverse("dashboard:firewall_policies"),
        deleted=f"Firewall policy {policy} deleted.",
    )
