"""Changing security groups and rules: permission, validation, DB + audit, then dispatch.

Every function raises the `sgweb.tenancy.errors.ActionError` family on refusal and changes
nothing in that case. The dashboard and the API call exactly these.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.security.choices import (
    DEFAULT_GROUP_DESCRIPTION,
    DEFAULT_GROUP_NAME,
    Direction,
    Ethertype,
)
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.security.representation import group_to_dict, rule_to_dict
from sgweb.security.validators import ANY_PREFIXES, CleanRule, clean_rule, rule_duplicate_key
from sgweb.tenancy.access import is_admin, require_change, require_project_change
from sgweb.tenancy.errors import Conflict, OverQuota
from sgweb.tenancy.models import Project, Quota
from sgweb.tenancy.standard import changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    UNRECOGNIZED,
    Errors,
    clean_bool,
    clean_description,
    clean_flags,
    clean_name,
    clean_name_and_description,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None  # request.user, or None for the system

GROUP_FIELDS = ("name", "description", "stateful")
RULE_FIELDS = (
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "description",
)


def _group_not_found(group_id: object) -> str:
    return f"Security group {group_id} does not exist"


def _quota_of(project: Project) -> Quota:
    quota, _ = Quota.objects.get_or_create(project=project)
    return quota


# --- default group -------------------------------------------------------------------------


def _default_rules(group: SecurityGroup) -> list[SecurityGroupRule]:
    rules = []
    for ethertype in (Ethertype.IPV4, Ethertype.IPV6):
        rules.append(
            SecurityGroupRule(
                security_group=group,
                project_id=group.project_id,
                direction=Direction.EGRESS,
                ethertype=ethertype,
            )
        )
        rules.append(
            SecurityGroupRule(
                security_group=group,
                project_id=group.project_id,
                direction=Direction.INGRESS,
                ethertype=ethertype,
                remote_group=group,
            )
        )
    return rules


def ensure_default_group(project: Project, actor: Actor = None) -> SecurityGroup:
    """The project's `default` group, created with Neutron's default rules on first use."""
    group = SecurityGroup.objects.filter(project=project, name=DEFAULT_GROUP_NAME).first()
    if group is not None:
        return group
    with transaction.atomic():
        # Lock the project so two first uses do not create two default groups.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        group = SecurityGroup.objects.filter(project=project, name=DEFAULT_GROUP_NAME).first()
        if group is not None:
            return group
        group = SecurityGroup.objects.create(
            project=project, name=DEFAULT_GROUP_NAME, description=DEFAULT_GROUP_DESCRIPTION
        )
        rules = SecurityGroupRule.objects.bulk_create(_default_rules(group))
        record(
            actor,
            AuditAction.CREATE,
            "security_group",
            group.id,
            f"{project.name}/{group.name}",
            project_id=project.id,
            after=group_to_dict(group, rules),
        )
    return group


def ensure_default_groups(project_ids: Iterable[uuid.UUID]) -> None:
    """Create missing default groups for these projects, with one query when none is missing."""
    ids = list(project_ids)
    if not ids:
        return
    missing = Project.objects.filter(id__in=ids).exclude(security_groups__name=DEFAULT_GROUP_NAME)
    for project in missing:
        ensure_default_group(project)


# --- groups --------------------------------------------------------------------------------


def create_security_group(
    actor: Actor,
    project: Project,
    *,
    name: str,
    description: str = "",
    stateful: bool = True,
) -> SecurityGroup:
    require_project_change(actor, project)
    errors = Errors()
    clean = clean_name(errors, name)
    desc = clean_description(errors, description)
    is_stateful = clean_bool(errors, "stateful", stateful)
    errors.raise_if_any()
    ensure_default_group(project, actor)
    if clean == DEFAULT_GROUP_NAME:
        raise Conflict(
            "Default security group already exists.",
            neutron_type="SecurityGroupDefaultAlreadyExists",
            errors={"name": ["The project already has its default group."]},
        )
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        quota = _quota_of(project)
        used = SecurityGroup.objects.filter(project=project).count()
        if 0 <= quota.security_groups <= used:
            raise OverQuota(
                "Quota exceeded for resources: ['security_group'].",
                errors={"__all__": [f"The project may have {quota.security_groups} groups."]},
            )
        group = SecurityGroup.objects.create(
            project=project, name=clean, description=desc, stateful=is_stateful
        )
        # Neutron gives new groups the two allow-all egress rules.
        rules = [
            SecurityGroupRule(
                security_group=group,
                project_id=project.id,
                direction=Direction.EGRESS,
                ethertype=ethertype,
            )
            for ethertype in (Ethertype.IPV4, Ethertype.IPV6)
        ]
        used_rules = SecurityGroupRule.objects.filter(project=project).count()
        if 0 <= quota.security_group_rules < used_rules + len(rules):
            raise OverQuota(
                "Quota exceeded for resources: ['security_group_rule'].",
                errors={
                    "__all__": [
                        f"The project may have {quota.security_group_rules} rules; a new "
                        "group needs room for its two egress rules."
                    ]
                },
            )
        rules = SecurityGroupRule.objects.bulk_create(rules)
        after = group_to_dict(group, rules)
        record(
            actor,
            AuditAction.CREATE,
            "security_group",
            group.id,
            f"{project.name}/{group.name}",
            project_id=project.id,
            after=after,
        )
    return group


def update_security_group(actor: Actor, group: SecurityGroup, **changes: Any) -> SecurityGroup:
    require_change(
        actor,
        group.project_id,
        not_found=_group_not_found(group.id),
        neutron_type="SecurityGroupNotFound",
    )
    refuse_fields(changes, GROUP_FIELDS, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    values.update(clean_flags(errors, changes, ("stateful",)))
    errors.raise_if_any()
    if (
        "name" in values
        and values["name"] != group.name
        and DEFAULT_GROUP_NAME in (group.name, values["name"])
    ):
        raise Conflict(
            "Updating default security group not allowed.",
            neutron_type="SecurityGroupCannotUpdateDefault",
            errors={"name": ["The default group keeps its name and no group may take it."]},
        )
    with transaction.atomic():
        locked = SecurityGroup.objects.select_for_update().get(pk=group.pk)
        rules = list(locked.rules.all())
        before = group_to_dict(locked, rules)
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        if "stateful" in changed and locked.port_links.exists():
            # Neutron refuses it too: the ports' connections would change meaning under them.
            raise Conflict(
                f"Security Group {locked.id} in use.",
                neutron_type="SecurityGroupInUse",
                errors={
                    "stateful": [
                        "Ports use this group; remove it from them before switching between "
                        "stateful and stateless."
                    ]
                },
            )
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "security_group",
            locked.id,
            f"{locked.project.name}/{locked.name}",
            project_id=locked.project_id,
            before=before,
            after=group_to_dict(locked, rules),
        )
        if "stateful" in changed:
            dispatch.firewall_changed(f"group {locked.id} stateful changed", groups=[locked.id])
    return locked


def delete_security_group(actor: Actor, group: SecurityGroup) -> None:
    require_change(
        actor,
        group.project_id,
        not_found=_group_not_found(group.id),
        neutron_type="SecurityGroupNotFound",
    )

    if group.name == DEFAULT_GROUP_NAME and not is_admin(actor):
        raise Conflict(
            "Insufficient rights for removing default security group.",
            neutron_type="SecurityGroupCannotRemoveDefault",
        )
    with transaction.atomic():
        locked = SecurityGroup.objects.select_for_update().get(pk=group.pk)
        port_count = locked.port_links.count()
        if port_count:
            raise Conflict(
                f"Security Group {locked.id} in use.",
                neutron_type="SecurityGroupInUse",
                errors={"__all__": [f"{port_count} port(s) still use this group."]},
            )
        # Rules of other groups naming this one as remote go with it (Neutron cascades too);
        # the hosts of the ports using those groups lose those rules.
        cascaded = list(
            SecurityGroupRule.objects.filter(remote_group=locked)
            .exclude(security_group=locked)
            .select_related("security_group")
        )
        referencing_groups = {rule.security_group_id for rule in cascaded}
        dispatch.firewall_changed(f"group {locked.id} deleted", groups=referencing_groups)
        for rule in cascaded:
            record(
                actor,
                AuditAction.DELETE,
                "security_group_rule",
                rule.id,
                f"{rule.security_group.name}: {rule} (remote group {locked.name} deleted)",
                project_id=rule.project_id,
                before=rule_to_dict(rule),
            )
        SecurityGroup.objects.filter(id__in=referencing_groups).update(
            revision_number=F("revision_number") + 1, updated_at=timezone.now()
        )
        before = group_to_dict(locked, list(locked.rules.all()))
        project_id = locked.project_id
        group_id = locked.id
        repr_ = f"{locked.project.name}/{locked.name}"
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "security_group",
            group_id,
            repr_,
            project_id=project_id,
            before=before,
        )


# --- rules ---------------------------------------------------------------------------------


def _duplicate_of(group: SecurityGroup, clean: CleanRule) -> SecurityGroupRule | None:
    """The group's rule that `clean` repeats, if any.

    The database narrows to the few rules with the same direction, ethertype, ports, remote
    group and prefix (either spelling of "anywhere"); only those are compared in Python, where
    protocol spellings ("6", "tcp") are folded. A bulk create of n rules costs n small queries,
    not n scans of a growing group."""
    key = clean.duplicate_key()
    if clean.normalized_cidr in ANY_PREFIXES or clean.normalized_cidr is None:
        prefix = Q(normalized_cidr__isnull=True) | Q(normalized_cidr__in=ANY_PREFIXES)
    else:
        prefix = Q(normalized_cidr=clean.normalized_cidr)
    candidates = group.rules.filter(
        prefix,
        direction=clean.direction,
        ethertype=clean.ethertype,
        port_range_min=clean.port_range_min,
        port_range_max=clean.port_range_max,
        remote_group_id=clean.remote_group.id if clean.remote_group else None,
    )
    for existing in candidates:
        existing_key = rule_duplicate_key(
            existing.direction,
            existing.ethertype,
            existing.protocol,
            existing.port_range_min,
            existing.port_range_max,
            existing.normalized_cidr,
            existing.remote_group_id,
        )
        if existing_key == key:
            return existing
    return None


def create_security_group_rule(
    actor: Actor, group: SecurityGroup, **fields: Any
) -> SecurityGroupRule:
    """Fields are Neutron's: direction, ethertype, protocol, port_range_min/max,
    remote_ip_prefix, remote_group_id, description."""
    require_change(
        actor,
        group.project_id,
        not_found=_group_not_found(group.id),
        neutron_type="SecurityGroupNotFound",
    )
    refuse_fields(fields, RULE_FIELDS, UNRECOGNIZED)
    clean = clean_rule(actor, group, fields)
    with transaction.atomic():
        # The project first (as creating a group does), then the group: the quota counts the
        # whole project's rules, so two creates in different groups of one project must queue
        # here, or both see 99 of 100 and the project ends at 101.
        Project.objects.select_for_update().filter(pk=group.project_id).first()
        locked = SecurityGroup.objects.select_for_update().get(pk=group.pk)
        existing = _duplicate_of(locked, clean)
        if existing is not None:
            raise Conflict(
                f"Security group rule already exists. Rule id is {existing.id}.",
                neutron_type="SecurityGroupRuleExists",
                errors={"__all__": ["The group already has this rule."]},
            )
        quota = _quota_of(locked.project)
        used = SecurityGroupRule.objects.filter(project_id=locked.project_id).count()
        if 0 <= quota.security_group_rules <= used:
            raise OverQuota(
                "Quota exceeded for resources: ['security_group_rule'].",
                errors={"__all__": [f"The project may have {quota.security_group_rules} rules."]},
            )
        rule = SecurityGroupRule.objects.create(
            security_group=locked,
            project_id=locked.project_id,
            direction=clean.direction,
            ethertype=clean.ethertype,
            protocol=clean.protocol,
            port_range_min=clean.port_range_min,
            port_range_max=clean.port_range_max,
            remote_ip_prefix=clean.remote_ip_prefix,
            normalized_cidr=clean.normalized_cidr,
            remote_group=clean.remote_group,
            description=clean.description,
        )
        locked.bump_revision()
        locked.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.CREATE,
            "security_group_rule",
            rule.id,
            f"{locked.name}: {rule}",
            project_id=locked.project_id,
            after=rule_to_dict(rule),
        )
        dispatch.firewall_changed(f"rule {rule.id} added to {locked.id}", groups=[locked.id])
    return rule


def delete_security_group_rule(actor: Actor, rule: SecurityGroupRule) -> None:
    require_change(
        actor,
        rule.project_id,
        not_found=f"Security group rule {rule.id} does not exist",
        neutron_type="SecurityGroupRuleNotFound",
    )
    with transaction.atomic():
        group = SecurityGroup.objects.select_for_update().get(pk=rule.security_group_id)
        before = rule_to_dict(rule)
        rule_id = rule.id
        repr_ = f"{group.name}: {rule}"
        SecurityGroupRule.objects.filter(pk=rule_id).delete()
        group.bump_revision()
        group.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.DELETE,
            "security_group_rule",
            rule_id,
            repr_,
            project_id=group.project_id,
            before=before,
        )
        dispatch.firewall_changed(f"rule {rule_id} removed from {group.id}", groups=[group.id])
