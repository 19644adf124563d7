"""Creating, changing and deleting firewall policies; the order of their rules.

A policy's rules are matched in order (position 1 first). Every change of the rule list or
of the policy clears `audited` unless the same request sets it (Neutron's rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.fwaas.actions.common import (
    check_quota,
    groups_using_policies,
    nodes_of_policies,
    repr_of,
    rule_not_found,
    tell_nodes,
    usable_by,
)
from sgweb.fwaas.models import FirewallPolicy, FirewallRule, PolicyRule
from sgweb.fwaas.representation import policy_to_dict
from sgweb.tenancy.access import require_admin, require_change
from sgweb.tenancy.errors import Conflict, Invalid
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    Errors,
    clean_bool,
    clean_description,
    clean_name,
    clean_name_and_description,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None

UPDATABLE = ("name", "description", "shared", "audited", "firewall_rules")


def _require_policy(actor: Actor, policy: FirewallPolicy) -> None:
    require_change(
        actor,
        policy.project_id,
        not_found=f"Firewall Policy {policy.id} could not be found.",
        neutron_type="FirewallPolicyNotFound",
    )


def _check_rules(
    actor: Actor, project: Project, rules: Sequence[FirewallRule], *, shared: bool
) -> None:
    seen: set[Any] = set()
    for rule in rules:
        if not usable_by(actor, project, rule):
            raise rule_not_found(rule.id)
        if rule.pk in seen:
            raise Invalid(
                f"Firewall rule {rule.id} is given twice.",
                errors={"firewall_rules": [f"Rule {rule.name or rule.id} is given twice."]},
            )
        seen.add(rule.pk)
    _check_sharing(shared, rules)


def _check_sharing(shared: bool, rules: Sequence[FirewallRule]) -> None:
    """Neutron: a shared policy holds only shared rules (or the other projects using it would
    run rules they cannot see)."""
    private = [rule for rule in rules if not rule.shared]
    if shared and private:
        raise Conflict(
            f"Operation cannot be performed since Firewall Policy is shared and Firewall Rule "
            f"{private[0].id} is not.",
            neutron_type="FirewallPolicySharingConflict",
            errors={"shared": ["Share its rules first."]},
        )


def _write_rules(policy: FirewallPolicy, rules: Sequence[FirewallRule]) -> None:
    PolicyRule.objects.filter(policy=policy).delete()
    PolicyRule.objects.bulk_create(
        PolicyRule(policy=policy, rule=rule, position=index)
        for index, rule in enumerate(rules, start=1)
    )


def create_policy(
    actor: Actor,
    project: Project,
    *,
    name: str = "",
    description: str = "",
    shared: bool = False,
    audited: bool = False,
    firewall_rules: Sequence[FirewallRule] = (),
) -> FirewallPolicy:
    require_change(actor, project.id, not_found=f"Project {project.id} could not be found.")
    errors = Errors()
    values: dict[str, Any] = {
        "name": clean_name(errors, name),
        "description": clean_description(errors, description),
        "shared": clean_bool(errors, "shared", shared),
        "audited": clean_bool(errors, "audited", audited),
    }
    errors.raise_if_any()
    if values["shared"]:
        require_admin(actor, "Sharing a firewall policy")
    _check_rules(actor, project, firewall_rules, shared=values["shared"])
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        check_quota(project, FirewallPolicy, "QUOTA_FIREWALL_POLICIES", "firewall_policy")
        policy = FirewallPolicy.objects.create(project=project, **values)
        _write_rules(policy, firewall_rules)
        record(
            actor,
            AuditAction.CREATE,
            "firewall_policy",
            policy.id,
            repr_of(policy),
            project_id=project.id,
            after=policy_to_dict(policy),
        )
    return policy


def _save(
    actor: Actor,
    locked: FirewallPolicy,
    before: dict[str, Any],
    changed: dict[str, Any],
    reason: str,
    *,
    rules_changed: bool,
    audited_given: bool = False,
) -> FirewallPolicy:
    """Store an update (`changed` may be empty when only the rules changed), audit it, and
    tell the nodes of the groups using the policy when what they filter changed. Any change
    clears `audited` unless the request itself set it."""
    if not audited_given and locked.audited:
        changed = {**changed, "audited": False}
    locked.save_changes(changed)
    record(
        actor,
        AuditAction.UPDATE,
        "firewall_policy",
        locked.id,
        repr_of(locked),
        project_id=locked.project_id,
        before=before,
        after=policy_to_dict(locked),
    )
    if rules_changed:
        tell_nodes(reason, nodes_of_policies([locked.pk]))
    return locked


def update_policy(actor: Actor, policy: FirewallPolicy, **changes: Any) -> FirewallPolicy:
    """`firewall_rules`: the whole new list of rules (FirewallRule objects), in order."""
    _require_policy(actor, policy)
    refuse_fields(changes, UPDATABLE, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    for flag in ("shared", "audited"):
        if flag in changes:
            values[flag] = clean_bool(errors, flag, changes[flag])
    errors.raise_if_any()
    with transaction.atomic():
        locked = FirewallPolicy.objects.select_for_update().get(pk=policy.pk)
        before = policy_to_dict(locked)
        changed = changed_fields(locked, values)
        if "shared" in changed:
            require_admin(actor, "Sharing a firewall policy")
        shared = values.get("shared", locked.shared)
        rules_changed = False
        if "firewall_rules" in changes:
            rules = list(changes["firewall_rules"] or [])
            _check_rules(actor, locked.project, rules, shared=shared)
            if [str(rule.id) for rule in rules] != before["firewall_rules"]:
                _write_rules(locked, rules)
                rules_changed = True
        else:
            _check_sharing(shared, locked.ordered_rules())
        if not changed and not rules_changed:
            return locked
        return _save(
            actor,
            locked,
            before,
            changed,
            f"policy {locked.id} changed",
            rules_changed=rules_changed,
            audited_given="audited" in values,
        )


def delete_policy(actor: Actor, policy: FirewallPolicy) -> None:
    _require_policy(actor, policy)
    with transaction.atomic():
        locked = FirewallPolicy.objects.select_for_update().get(pk=policy.pk)
        if groups_using_policies([locked.pk]).exists():
            raise Conflict(
                f"Firewall policy {locked.id} is being used.",
                neutron_type="FirewallPolicyInUse",
                errors={"__all__": ["Firewall groups still use it."]},
            )
        before = policy_to_dict(locked)
        policy_id, project_id, repr_ = locked.id, locked.project_id, repr_of(locked)
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "firewall_policy",
            policy_id,
            repr_,
            project_id=project_id,
            before=before,
        )


def _not_associated(rule: FirewallRule, policy: FirewallPolicy, field: str) -> Invalid:
    return Invalid(
        f"Firewall rule {rule.id} is not associated with firewall policy {policy.id}.",
        neutron_type="FirewallRuleNotAssociatedWithPolicy",
        errors={field: [f"Rule {rule.name or rule.id} is not in this policy."]},
    )


def insert_rule(
    actor: Actor,
    policy: FirewallPolicy,
    rule: FirewallRule,
    *,
    insert_before: FirewallRule | None = None,
    insert_after: FirewallRule | None = None,
) -> FirewallPolicy:
    """Put `rule` before `insert_before` (which wins when both are given), after
    `insert_after`, or at the top when neither is given (Neutron)."""
    _require_policy(actor, policy)
    with transaction.atomic():
        locked = FirewallPolicy.objects.select_for_update().get(pk=policy.pk)
        before = policy_to_dict(locked)
        rules = locked.ordered_rules()
        if rule in rules:
            raise Conflict(
                f"Firewall rule {rule.id} is already associated with firewall policy {locked.id}.",
                neutron_type="FirewallRuleAlreadyAssociated",
                errors={"firewall_rule_id": ["The rule is in this policy already."]},
            )
        if insert_before is not None:
            if insert_before not in rules:
                raise _not_associated(insert_before, locked, "insert_before")
            index = rules.index(insert_before)
        elif insert_after is not None:
            if insert_after not in rules:
                raise _not_associated(insert_after, locked, "insert_after")
            index = rules.index(insert_after) + 1
        else:
            index = 0
        rules.insert(index, rule)
        _check_rules(actor, locked.project, rules, shared=locked.shared)
        _write_rules(locked, rules)
        return _save(
            actor,
            locked,
            before,
            {},
            f"rule {rule.id} inserted into policy {locked.id} at {index + 1}",
            rules_changed=True,
        )


def remove_rule(actor: Actor, policy: FirewallPolicy, rule: FirewallRule) -> FirewallPolicy:
    _require_policy(actor, policy)
    with transaction.atomic():
        locked = FirewallPolicy.objects.select_for_update().get(pk=policy.pk)
        before = policy_to_dict(locked)
        rules = locked.ordered_rules()
        if rule not in rules:
            raise _not_associated(rule, locked, "firewall_rule_id")
        rules.remove(rule)
        _write_rules(locked, rules)
        return _save(
            actor,
            locked,
            before,
            {},
            f"rule {rule.id} removed from policy {locked.id}",
            rules_changed=True,
        )


def move_rule(
    actor: Actor, policy: FirewallPolicy, rule: FirewallRule, *, offset: int
) -> FirewallPolicy:
    """Move a rule `offset` places (-1: up, matched earlier; +1: down), clamped to the list."""
    _require_policy(actor, policy)
    with transaction.atomic():
        locked = FirewallPolicy.objects.select_for_update().get(pk=policy.pk)
        before = policy_to_dict(locked)
        rules = locked.ordered_rules()
        if rule not in rules:
            raise _not_associated(rule, locked, "firewall_rule_id")
        old = rules.index(rule)
        new = max(0, min(len(rules) - 1, old + offset))
        if new == old:
            return locked
        rules.insert(new, rules.pop(old))
        _write_rules(locked, rules)
        return _save(
            actor,
            locked,
            before,
            {},
            f"rule {rule.id} moved from {old + 1} to {new + 1} in policy {locked.id}",
            rules_changed=True,
        )
