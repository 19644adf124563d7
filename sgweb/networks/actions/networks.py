"""Creating, changing and deleting networks and subnets."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from django.db import transaction

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.networks.models import (
    FixedIP,
    Network,
    Port,
    Subnet,
)
from sgweb.networks.representation import network_to_dict, subnet_to_dict
from sgweb.networks.validators import (
    clean_subnet_values,
)
from sgweb.tenancy.access import require_admin, require_change, require_project_change
from sgweb.tenancy.errors import Conflict, Invalid
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

    Actor = User | AnonymousUser | None  # request.user, or None for the system
from sgweb.networks.actions.common import UNSET

# --- networks ------------------------------------------------------------------------------


def create_network(
    actor: Actor,
    project: Project,
    *,
    name: str = "",
    description: str = "",
    admin_state_up: bool = True,
    shared: bool = False,
) -> Network:
    require_project_change(actor, project)
    errors = Errors()
    values = {
        "name": clean_name(errors, name),
        "description": clean_description(errors, description),
        "admin_state_up": clean_bool(errors, "admin_state_up", admin_state_up),
        "shared": clean_bool(errors, "shared", shared),
    }
    errors.raise_if_any()
    if values["shared"]:
        require_admin(actor, "Sharing a network")
    with transaction.atomic():
        network = Network.objects.create(project=project, **values)
        record(
            actor,
            AuditAction.CREATE,
            "network",
            network.id,
            network.name or str(network.id),
            project_id=project.id,
            after=network_to_dict(network),
        )
    return network


def update_network(actor: Actor, network: Network, **changes: Any) -> Network:
    _require_network(actor, network)
    allowed = {"name", "description", "admin_state_up", "shared"}
    refuse_fields(changes, allowed, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    values.update(clean_flags(errors, changes, ("admin_state_up", "shared")))
    errors.raise_if_any()
    if "shared" in values and values["shared"] != network.shared:
        require_admin(actor, "Sharing a network")
    with transaction.atomic():
        locked = Network.objects.select_for_update().get(pk=network.pk)
        before = network_to_dict(locked)
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "network",
            locked.id,
            locked.name or str(locked.id),
            project_id=locked.project_id,
            before=before,
            after=network_to_dict(locked),
        )
    return locked


def delete_network(actor: Actor, network: Network) -> None:
    _require_network(actor, network)
    with transaction.atomic():
        locked = Network.objects.select_for_update().get(pk=network.pk)
        ports = locked.ports.count()
        if ports:
            raise Conflict(
                f"Unable to complete operation on network {locked.id}. There are one or more "
                "ports still in use on the network.",
                neutron_type="NetworkInUse",
                errors={"__all__": [f"{ports} port(s) are still on this network."]},
            )
        before = network_to_dict(locked)
        network_id, project_id, repr_ = locked.id, locked.project_id, locked.name
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "network",
            network_id,
            repr_ or str(network_id),
            project_id=project_id,
            before=before,
        )


def _require_network(actor: Actor, network: Network) -> None:
    require_change(
        actor,
        network.project_id,
        not_found=f"Network {network.id} could not be found.",
        neutron_type="NetworkNotFound",
    )


# --- subnets -------------------------------------------------------------------------------


def create_subnet(
    actor: Actor,
    network: Network,
    *,
    cidr: str,
    ip_version: int | None = None,
    name: str = "",
    description: str = "",
    gateway_ip: str | None = UNSET,
    enable_dhcp: bool = True,
    dhcp_servers: list[str] | None = None,
    allocation_pools: list[dict[str, str]] | None = None,
) -> Subnet:
    """`gateway_ip` left out means the first address; None means no gateway.
    `dhcp_servers` left out means the subnet's second address (when DHCP is on)."""
    _require_network(actor, network)
    errors = Errors()
    clean: dict[str, Any] = {
        "name": clean_name(errors, name),
        "description": clean_description(errors, description),
        "enable_dhcp": clean_bool(errors, "enable_dhcp", enable_dhcp),
    }
    addressing = clean_subnet_values(
        errors,
        cidr=cidr,
        ip_version=ip_version,
        gateway_ip=None if gateway_ip is UNSET else gateway_ip,
        dhcp_servers=dhcp_servers,
        allocation_pools=allocation_pools,
        enable_dhcp=clean["enable_dhcp"],
        gateway_given=gateway_ip is not UNSET,
    )
    errors.raise_if_any()
    new_net = ipaddress.ip_network(addressing["cidr"])
    with transaction.atomic():
        Network.objects.select_for_update().filter(pk=network.pk).first()
        for other in Subnet.objects.filter(network=network):
            if ipaddress.ip_network(other.cidr).overlaps(new_net):
                raise Invalid(
                    f"Invalid input for operation: Requested subnet with cidr: {new_net} for "
                    f"network: {network.id} overlaps with another subnet.",
                    errors={"cidr": [f"Overlaps subnet {other.name or other.id} ({other.cidr})."]},
                )
        subnet = Subnet.objects.create(
            network=network, project_id=network.project_id, **clean, **addressing
        )
        network.bump_revision()
        network.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.CREATE,
            "subnet",
            subnet.id,
            str(subnet),
            project_id=network.project_id,
            after=subnet_to_dict(subnet),
        )
    return subnet


def update_subnet(actor: Actor, subnet: Subnet, **changes: Any) -> Subnet:
    _require_subnet(actor, subnet)
    allowed = {"name", "description", "gateway_ip", "enable_dhcp", "dhcp_servers"}
    refuse_fields(changes, allowed, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = clean_name_and_description(errors, changes)
    if "enable_dhcp" in changes:
        values["enable_dhcp"] = clean_bool(errors, "enable_dhcp", changes["enable_dhcp"])
    if "gateway_ip" in changes or "dhcp_servers" in changes:
        addressing = clean_subnet_values(
            errors,
            cidr=subnet.cidr,
            ip_version=subnet.ip_version,
            gateway_ip=changes.get("gateway_ip", subnet.gateway_ip),
            dhcp_servers=changes.get("dhcp_servers", subnet.dhcp_servers),
            allocation_pools=subnet.allocation_pools,
            enable_dhcp=values.get("enable_dhcp", subnet.enable_dhcp),
            gateway_given=True,
        )
        for key in ("gateway_ip", "dhcp_servers"):
            if key in changes and key in addressing:
                values[key] = addressing[key]
    errors.raise_if_any()
    with transaction.atomic():
        locked = Subnet.objects.select_for_update().get(pk=subnet.pk)
        before = subnet_to_dict(locked)
        changed = changed_fields(locked, values)
        if not changed:
            return locked
        clash = set(FixedIP.objects.filter(subnet=locked).values_list("ip_address", flat=True)) & (
            {changed.get("gateway_ip")} | set(changed.get("dhcp_servers", []))
        )
        if clash:
            raise Conflict(
                f"Address {sorted(clash)[0]} is already allocated to a port.",
                neutron_type="IpAddressInUse",
            )
        locked.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "subnet",
            locked.id,
            str(locked),
            project_id=locked.project_id,
            before=before,
            after=subnet_to_dict(locked),
        )
        hosts: set[str] = set()
        if "dhcp_servers" in changed or "enable_dhcp" in changed:
            hosts = set(
                Port.objects.filter(network_id=locked.network_id, host__isnull=False)
                .values_list("host__name", flat=True)
                .distinct()
            )
        dispatch.firewall_changed(f"subnet {locked.id} DHCP servers changed", hosts=hosts)
    return locked


def delete_subnet(actor: Actor, subnet: Subnet) -> None:
    _require_subnet(actor, subnet)
    with transaction.atomic():
        locked = Subnet.objects.select_for_update().get(pk=subnet.pk)
        if locked.fixed_ips.exists():
            raise Conflict(
                f"Unable to complete operation on subnet {locked.id}: One or more ports have "
                "an IP allocation from this subnet.",
                neutron_type="SubnetInUse",
            )
        before = subnet_to_dict(locked)
        subnet_id, project_id, repr_ = locked.id, locked.project_id, str(locked)
        locked.delete()
        record(
            actor,
            AuditAction.DELETE,
            "subnet",
            subnet_id,
            repr_,
            project_id=project_id,
            before=before,
        )


def _require_subnet(actor: Actor, subnet: Subnet) -> None:
    require_change(
        actor,
        subnet.project_id,
        not_found=f"Subnet {subnet.id} could not be found.",
        neutron_type="SubnetNotFound",
    )
