"""Creating, changing and deleting firewall rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.fwaas.actions.common import (
    check_quota,
    nodes_of_rule,
    repr_of,
    rule_not_found,
    tell_nodes,
)
from sgweb.fwaas.models import FirewallPolicy, FirewallRule
from sgweb.fwaas.representation import rule_to_dict
from sgweb.fwaas.validators import (
    check_ports_need_tcp_or_udp,
    clean_action,
    clean_address,
    clean_ip_version,
    clean_port,
    clean_protocol,
)
from sgweb.tenancy.access import require_admin, require_change
from sgweb.tenancy.errors import Conflict
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    UNRECOGNIZED,
    Errors,
    clean_bool,
    clean_description,
    clean_name,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None

RULE_FIELDS = (
    "name",
    "description",
    "protocol",
    "ip_version",
    "source_ip_address",
    "destination_ip_address",
    "source_port",
    "destination_port",
    "action",
    "enabled",
    "shared",
)
DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "protocol": None,
    "ip_version": 4,
    "source_ip_address": None,
    "destination_ip_address": None,
    "source_port": None,
    "destination_port": None,
    "action": "deny",
    "enabled": True,
    "shared": False,
}


def clean_rule(errors: Errors, given: dict[str, Any]) -> dict[str, Any]:
    """Every field of a rule from `given` (a whole rule: defaults merged in by the caller)."""
    values: dict[str, Any] = {
        "name": clean_name(errors, given["name"]),
        "description": clean_description(errors, given["description"]),
        "protocol": clean_protocol(errors, given["protocol"]),
        "ip_version": clean_ip_version(errors, given["ip_version"]),
        "action": clean_action(errors, given["action"]),
        "enabled": clean_bool(errors, "enabled", given["enabled"]),
        "shared": clean_bool(errors, "shared", given["shared"]),
    }
    for field in ("source_ip_address", "destination_ip_address"):
        values[field] = clean_address(errors, field, given[field], values["ip_version"])
    for field in ("source_port", "destination_port"):
        values[field] = clean_port(errors, field, given[field])
    check_ports_need_tcp_or_udp(errors, values)
    return values


def _require_rule(actor: Actor, rule: FirewallRule) -> None:
    require_change(
        actor,
        rule.project_id,
        not_found=f"Firewall Rule {rule.id} could not be found.",
        neutron_type="FirewallRuleNotFound",
    )


def create_rule(actor: Actor, project: Project, **fields: Any) -> FirewallRule:
    require_change(actor, project.id, not_found=f"Project {project.id} could not be found.")
    refuse_fields(fields, RULE_FIELDS, UNRECOGNIZED)
    errors = Errors()
    values = clean_rule(errors, {**DEFAULTS, **fields})
    errors.raise_if_any()
    if values["shared"]:
        require_admin(actor, "Sharing a firewall rule")
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        check_quota(project, FirewallRule, "QUOTA_FIREWALL_RULES", "firewall_rule")
        rule = FirewallRule.objects.create(project=project, **values)
        record(
            actor,
            AuditAction.CREATE,
            "firewall_rule",
            rule.id,
            repr_of(rule),
            project_id=project.id,
            after=rule_to_dict(rule),
        )
    return rule


def update_rule(actor: Actor, rule: FirewallRule, **changes: Any) -> FirewallRule:
    _require_rule(actor, rule)
    refuse_fields(changes, RULE_FIELDS, CANNOT_CHANGE)
    with transaction.atomic():
        locked = FirewallRule.objects.select_for_update().get(pk=rule.pk)
        current = {field: getattr(locked, field) for field in RULE_FIELDS}
        errors = Errors()
        values = clean_rule(errors, {**current, **changes})
        errors.raise_if_any()
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        if "shared" in changed:
            require_admin(actor, "Sharing a firewall rule")
            if (
                not changed["shared"]
                and FirewallPolicy.objects.filter(shared=True, rule_links__rule=locked)
                .exclude(project_id=locked.project_id)
                .exists()
            ):
                raise Conflict(
                    f"Operation cannot be performed since Firewall Rule {locked.id} is used "
                    "by a shared policy of another project.",
                    neutron_type="FirewallRuleSharingConflict",
                )
        before = rule_to_dict(locked)
        locked.save_changes(changed)
        # Neutron: a policy holding a changed rule is no longer audited.
        FirewallPolicy.objects.filter(rule_links__rule=locked, audited=True).update(audited=False)
        record(
            actor,
            AuditAction.UPDATE,
            "firewall_rule",
            locked.id,
            repr_of(locked),
            project_id=locked.project_id,
            before=before,
            after=rule_to_dict(locked),
        )
        if set(changed) - {"name", "description", "shared"}:
            tell_nodes(f"firewall rule {locked.id} changed", nodes_of_rule(locked))
    return locked


def delete_rule(actor: Actor, rule: FirewallRule) -> None:
    _require_rule(actor, rule)
    with transaction.atomic():
        locked = FirewallRule.objects.select_for_update().filter(pk=rule.pk).first()
        if locked is None:
            raise rule_not_found(rule.id)
        if locked.policy_links.exists():
            raise Conflict(
                f"Firewall rule {locked.id} is being used.",
                neutron_type="FirewallRuleInUse",
                errors={"__all__": ["Remove it from its policies first."]},
            )
        before = rule_to_dict(locked)
        rule_id, project_id, repr_ = locked.id, locked.project_id, repr_of(locked)
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "firewall_rule",
            rule_id,
            repr_,
            project_id=project_id,
            before=before,
        )
