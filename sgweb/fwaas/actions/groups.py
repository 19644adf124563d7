"""Creating, changing and deleting firewall groups: policies on router interface ports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.fwaas.actions.common import (
    UNSET,
    check_quota,
    nodes_of_groups,
    policy_not_found,
    repr_of,
    tell_nodes,
    usable_by,
)
from sgweb.fwaas.models import FirewallGroup, FirewallGroupPort, FirewallPolicy
from sgweb.fwaas.representation import group_to_dict
from sgweb.networks.models import Port
from sgweb.routers.choices import ROUTER_INTERFACE
from sgweb.routers.models import RouterInterface
from sgweb.tenancy.access import is_admin, require_admin, require_change
from sgweb.tenancy.errors import Conflict, Invalid, NotFound
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

UPDATABLE = (
    "name",
    "description",
    "ingress_policy",
    "egress_policy",
    "ports",
    "admin_state_up",
    "shared",
)
# What the network nodes compile; the rest (names, sharing) changes no rule.
FILTERING = {"ingress_policy", "egress_policy", "admin_state_up"}


def _require_group(actor: Actor, group: FirewallGroup) -> None:
    require_change(
        actor,
        group.project_id,
        not_found=f"Firewall Group {group.id} could not be found.",
        neutron_type="FirewallGroupNotFound",
    )


def _check_policy(actor: Actor, project: Project, policy: FirewallPolicy | None) -> None:
    if policy is not None and not usable_by(actor, project, policy):
        raise policy_not_found(policy.id)


def _check_ports(
    actor: Actor, project: Project, ports: Sequence[Port], group: FirewallGroup | None
) -> list[Port]:
    """Router interface ports of the group's project (admins: any), each in no other group.
    VM ports are refused: our firewall groups run in router namespaces only."""
    unique: list[Port] = []
    for port in ports:
        if port in unique:
            continue
        if port.project_id != project.id and not is_admin(actor):
            raise NotFound(f"Port {port.id} could not be found.", neutron_type="PortNotFound")
        if (
            port.device_owner != ROUTER_INTERFACE
            or not RouterInterface.objects.filter(port=port).exists()
        ):
            raise Invalid(
                f"Port {port.id} is not a router interface: firewall groups filter router "
                "ports only.",
                neutron_type="FirewallGroupPortInvalid",
                errors={"ports": [f"Port {port.name or port.id} is not a router interface."]},
            )
        taken = FirewallGroupPort.objects.filter(port=port)
        if group is not None:
            taken = taken.exclude(group=group)
        if taken.exists():
            raise Conflict(
                f"Port {port.id} of firewall group is in use by another firewall group.",
                neutron_type="FirewallGroupPortInUse",
                errors={"ports": [f"Port {port.name or port.id} is in another group."]},
            )
        unique.append(port)
    return unique


def create_group(
    actor: Actor,
    project: Project,
    *,
    name: str = "",
    description: str = "",
    ingress_policy: FirewallPolicy | None = None,
    egress_policy: FirewallPolicy | None = None,
    ports: Sequence[Port] = (),
    admin_state_up: bool = True,
    shared: bool = False,
) -> FirewallGroup:
    require_change(actor, project.id, not_found=f"Project {project.id} could not be found.")
    errors = Errors()
    values: dict[str, Any] = {
        "name": clean_name(errors, name),
        "description": clean_description(errors, description),
        "admin_state_up": clean_bool(errors, "admin_state_up", admin_state_up),
        "shared": clean_bool(errors, "shared", shared),
    }
    errors.raise_if_any()
    if values["shared"]:
        require_admin(actor, "Sharing a firewall group")
    _check_policy(actor, project, ingress_policy)
    _check_policy(actor, project, egress_policy)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=project.pk).first()
        check_quota(project, FirewallGroup, "QUOTA_FIREWALL_GROUPS", "firewall_group")
        wanted = _check_ports(actor, project, ports, None)
        group = FirewallGroup.objects.create(
            project=project, ingress_policy=ingress_policy, egress_policy=egress_policy, **values
        )
        FirewallGroupPort.objects.bulk_create(
            FirewallGroupPort(group=group, port=port) for port in wanted
        )
        record(
            actor,
            AuditAction.CREATE,
            "firewall_group",
            group.id,
            repr_of(group),
            project_id=project.id,
            after=group_to_dict(group),
        )
        tell_nodes(f"firewall group {group.id} created", nodes_of_groups([group.pk]))
    return group


def update_group(actor: Actor, group: FirewallGroup, **changes: Any) -> FirewallGroup:
    """`ingress_policy`/`egress_policy`: a FirewallPolicy or None; `ports`: the whole list."""
    _require_group(actor, group)
    refuse_fields(changes, UPDATABLE, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    for flag in ("admin_state_up", "shared"):
        if flag in changes:
            values[flag] = clean_bool(errors, flag, changes[flag])
    errors.raise_if_any()
    with transaction.atomic():
        locked = FirewallGroup.objects.select_for_update().get(pk=group.pk)
        for direction in ("ingress_policy", "egress_policy"):
            if direction in changes:
                _check_policy(actor, locked.project, changes[direction])
                values[direction] = changes[direction]
        before = group_to_dict(locked)
        changed = changed_fields(locked, values)
        if "shared" in changed:
            require_admin(actor, "Sharing a firewall group")
        ports_changed = False
        nodes = nodes_of_groups([locked.pk])  # the routers it leaves hear of it too
        if changes.get("ports", UNSET) is not UNSET:
            wanted = _check_ports(actor, locked.project, list(changes["ports"] or []), locked)
            if sorted(str(port.id) for port in wanted) != before["ports"]:
                FirewallGroupPort.objects.filter(group=locked).delete()
                FirewallGroupPort.objects.bulk_create(
                    FirewallGroupPort(group=locked, port=port) for port in wanted
                )
                ports_changed = True
        if not changed and not ports_changed:
            return locked
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "firewall_group",
            locked.id,
            repr_of(locked),
            project_id=locked.project_id,
            before=before,
            after=group_to_dict(locked),
        )
        if ports_changed or FILTERING & set(changed):
            nodes |= nodes_of_groups([locked.pk])
            tell_nodes(f"firewall group {locked.id} changed", nodes)
    return locked


def delete_group(actor: Actor, group: FirewallGroup) -> None:
    _require_group(actor, group)
    with transaction.atomic():
        locked = FirewallGroup.objects.select_for_update().get(pk=group.pk)
        before = group_to_dict(locked)
        nodes = nodes_of_groups([locked.pk])
        group_id, project_id, repr_ = locked.id, locked.project_id, repr_of(locked)
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "firewall_group",
            group_id,
            repr_,
            project_id=project_id,
            before=before,
        )
        tell_nodes(f"firewall group {group_id} deleted", nodes)


def port_in_group(port: Port) -> str | None:
    """The routers app asks before removing an interface (registered in FwaasConfig.ready)."""
    link = FirewallGroupPort.objects.filter(port=port).select_related("group").first()
    if link is None:
        return None
    return (
        f"Router interface port {port.id} is used by firewall group "
        f"{link.group.name or link.group.id}; remove it from the group first."
    )
