"""Changing packet logs: permission, validation, DB + audit, then the hosts they reach.

A log changes the chains of the ports it covers (NFLOG rules, see sgweb.firewall.packetlog),
so every write says which hosts to publish: the target port's host, the hosts of the group's
ports, or the hosts of every port of the project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.networks.models import Port
from sgweb.packetlogs.choices import SECURITY_GROUP, LogEvent
from sgweb.packetlogs.models import Log
from sgweb.packetlogs.representation import log_to_dict
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import require_change, require_project_change
from sgweb.tenancy.models import Project
from sgweb.tenancy.standard import changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
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

    Actor = User | AnonymousUser | None

UPDATABLE = ("name", "description", "enabled")


def _not_found(log_id: object) -> str:
    return f"Log {log_id} could not be found."


def _check(
    errors: Errors,
    project: Project,
    resource_type: str,
    event: str,
    resource: SecurityGroup | None,
    target: Port | None,
) -> None:
    if resource_type != SECURITY_GROUP:
        errors.add("resource_type", f"Logging of {resource_type!r} is not supported.")
    if event not in LogEvent.values:
        errors.add("event", f"Must be one of {', '.join(LogEvent.values)}.")
    if resource is not None and resource.project_id != project.id:
        errors.add("resource_id", "The security group belongs to another project.")
    if target is not None and target.project_id != project.id:
        errors.add("target_id", "The port belongs to another project.")
    if (
        resource is not None
        and target is not None
        and not target.security_groups.filter(pk=resource.pk).exists()
    ):
        errors.add("target_id", f"Port {target.id} is not in security group {resource.id}.")


def _publish(log: Log, reason: str) -> None:
    """Inside the transaction: the hosts whose ports this log covers get their chains again."""
    if log.target_id is not None:
        host = Port.objects.filter(pk=log.target_id).values_list("host__name", flat=True).first()
        dispatch.firewall_changed(reason, hosts=[host] if host else [])
    elif log.resource_id is not None:
        # Named as hosts, not as a group change: a log changes the ports of a host's state,
        # which a change of `groups` never does (sgweb.hostsync.fanout keeps their ports).
        hosts = Port.objects.filter(
            group_links__security_group_id=log.resource_id, host__isnull=False
        )
        dispatch.firewall_changed(reason, hosts=set(hosts.values_list("host__name", flat=True)))
    else:
        hosts = Port.objects.filter(project_id=log.project_id, host__isnull=False)
        dispatch.firewall_changed(reason, hosts=set(hosts.values_list("host__name", flat=True)))


def owner_project(resource: SecurityGroup | None, target: Port | None) -> Project | None:
    """The project a log goes into when its creator names none and belongs to no single
    project (an admin): as Neutron does, the target port's, else the resource group's."""
    if target is not None:
        return target.project
    if resource is not None:
        return resource.project
    return None


def create_log(
    actor: Actor,
    project: Project,
    *,
    name: str = "",
    description: str = "",
    resource_type: str = SECURITY_GROUP,
    event: str = LogEvent.ALL,
    enabled: bool = True,
    resource: SecurityGroup | None = None,
    target: Port | None = None,
) -> Log:
    require_project_change(actor, project)
    errors = Errors()
    clean = clean_name(errors, name)
    desc = clean_description(errors, description)
    is_enabled = clean_bool(errors, "enabled", enabled)
    _check(errors, project, resource_type, event, resource, target)
    errors.raise_if_any()
    with transaction.atomic():
        log = Log.objects.create(
            project=project,
            name=clean,
            description=desc,
            resource_type=resource_type,
            event=event,
            enabled=is_enabled,
            resource=resource,
            target=target,
        )
        record(
            actor,
            AuditAction.CREATE,
            "log",
            log.id,
            f"{project.name}/{log.name or log.id}",
            project_id=project.id,
            after=log_to_dict(log),
        )
        if log.enabled:
            _publish(log, f"log {log.id} created")
    return log


def update_log(actor: Actor, log: Log, **changes: Any) -> Log:
    require_change(actor, log.project_id, not_found=_not_found(log.id), neutron_type="LogNotFound")
    refuse_fields(changes, UPDATABLE, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    values.update(clean_flags(errors, changes, ("enabled",)))
    errors.raise_if_any()
    with transaction.atomic():
        locked = Log.objects.select_for_update().get(pk=log.pk)
        before = log_to_dict(locked)
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "log",
            locked.id,
            f"{locked.project.name}/{locked.name or locked.id}",
            project_id=locked.project_id,
            before=before,
            after=log_to_dict(locked),
        )
        if "enabled" in changed:
            _publish(locked, f"log {locked.id} enabled={locked.enabled}")
    return locked


def delete_log(actor: Actor, log: Log) -> None:
    require_change(actor, log.project_id, not_found=_not_found(log.id), neutron_type="LogNotFound")
    with transaction.atomic():
        before = log_to_dict(log)
        if log.enabled:
            _publish(log, f"log {log.id} deleted")
        record(
            actor,
            AuditAction.DELETE,
            "log",
            log.id,
            f"{log.project.name}/{log.name or log.id}",
            project_id=log.project_id,
            before=before,
        )
        log.delete()
