"""Creating, changing and deleting ports: addresses, groups, pairs, host binding."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.networks.addressing import allocate_ip, reserved_addresses, unused_mac
from sgweb.networks.models import (
    AllowedAddressPair,
    FixedIP,
    Host,
    Network,
    Port,
    PortSecurityGroup,
    Subnet,
)
from sgweb.networks.representation import port_to_dict
from sgweb.networks.validators import (
    clean_address_pairs,
    clean_ip,
    clean_mac,
)
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import (
    can_see_project,
    is_admin,
    require_admin,
    require_change,
    require_project_change,
)
from sgweb.tenancy.errors import Conflict, Invalid, NotFound
from sgweb.tenancy.models import Project
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    UNRECOGNIZED,
    Errors,
    clean_bool,
    clean_description,
    clean_name,
    clean_name_and_description,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None  # request.user, or None for the system
from sgweb.networks.actions.hosts import host_for_binding
from sgweb.security.actions import ensure_default_group

PORT_FIELDS = (
    "name",
    "description",
    "mac_address",
    "fixed_ips",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "host",
    "device_owner",
    "device_id",
    "admin_state_up",
)
# Neutron's device_owner of a router's port (sgweb.routers creates and deletes these).
ROUTER_INTERFACE_OWNER = "network:router_interface"
PORT_UPDATABLE = tuple(field for field in PORT_FIELDS if field != "mac_address")


# --- ports ---------------------------------------------------------------------------------


def _port_not_found(port_id: object) -> str:
    return f"Port {port_id} could not be found."


def _clean_groups(
    actor: Actor, project: Project, value: object, errors: Errors
) -> list[SecurityGroup]:
    if not isinstance(value, (list, tuple)):
        errors.add("security_groups", "security_groups must be a list of group ids.")
        return []
    wanted: list[uuid.UUID] = []
    for item in value:
        try:
            group_id = uuid.UUID(str(item))
        except ValueError:
            raise NotFound(
                f"Security group {item} does not exist",
                neutron_type="SecurityGroupNotFound",
                errors={"security_groups": [f"Security group {item} does not exist."]},
            ) from None
        if group_id not in wanted:
            wanted.append(group_id)
    groups = {group.id: group for group in SecurityGroup.objects.filter(id__in=wanted)}
    for group_id in wanted:
        group = groups.get(group_id)
        # A port may only use groups of its own project (admins excepted, as in Neutron).
        if (
            group is None
            or not can_see_project(actor, group.project_id)
            or (group.project_id != project.id and not is_admin(actor))
        ):
            raise NotFound(
                f"Security group {group_id} does not exist",
                neutron_type="SecurityGroupNotFound",
                errors={"security_groups": [f"Security group {group_id} does not exist."]},
            )
    return [groups[group_id] for group_id in wanted]


def _clean_fixed_ips(
    network: Network, value: object, errors: Errors, port: Port | None
) -> list[tuple[Subnet, str | None]] | None:
    """[(subnet, ip or None to allocate)]; None when `value` is None (allocate by default)."""
    if value is None:
        return None
    if not isinstance(value, list):
        errors.add("fixed_ips", "fixed_ips must be a list of {subnet_id, ip_address}.")
        return []
    subnets = {str(subnet.id): subnet for subnet in network.subnets.all()}
    result: list[tuple[Subnet, str | None]] = []
    for item in value:
        if not isinstance(item, dict) or not ({"subnet_id", "ip_address"} & set(item)):
            errors.add("fixed_ips", "Each fixed IP needs a subnet_id, an ip_address or both.")
            continue
        subnet: Subnet | None = None
        address: str | None = None
        if item.get("subnet_id"):
            subnet = subnets.get(str(item["subnet_id"]))
            if subnet is None:
                errors.add(
                    "fixed_ips", f"Subnet {item['subnet_id']} is not on network {network.id}."
                )
                continue
        if item.get("ip_address"):
            address = clean_ip(errors, "fixed_ips", item["ip_address"])
            if address is None:
                continue
            containing = [
                candidate
                for candidate in subnets.values()
                if ipaddress.ip_address(address) in ipaddress.ip_network(candidate.cidr)
            ]
            if subnet is None:
                if not containing:
                    errors.add(
                        "fixed_ips",
                        f"IP address {address} is in no subnet of network {network.id}.",
                    )
                    continue
                subnet = containing[0]
            elif subnet not in containing:
                errors.add("fixed_ips", f"IP address {address} is not inside {subnet.cidr}.")
                continue
            if address in reserved_addresses(subnet):
                errors.add(
                    "fixed_ips",
                    f"IP address {address} is reserved (network, broadcast, gateway or DHCP).",
                )
                continue
            taken = FixedIP.objects.filter(subnet=subnet, ip_address=address)
            if port is not None:
                taken = taken.exclude(port=port)
            if taken.exists():
                raise Conflict(
                    f"IP address {address} already allocated in subnet {subnet.id}",
                    neutron_type="IpAddressAlreadyAllocated",
                    errors={"fixed_ips": [f"{address} is already in use."]},
                )
        assert subnet is not None
        result.append((subnet, address))
    return result


def _refuse_security_off_with(
    *, pairs_given: bool, groups_given: bool, pairs_kept: bool = False, groups_kept: bool = False
) -> None:
    """A port without port security filters nothing, so it may not carry groups or address
    pairs; Neutron's exceptions, in its order (ml2 _portsec_ext_port_*_processing)."""
    if pairs_given or pairs_kept:
        raise Conflict(
            "Port Security must be enabled in order to have allowed address pairs on a port.",
            neutron_type="AddressPairAndPortSecurityRequired",
            errors={"port_security_enabled": ["Remove the allowed address pairs first."]},
        )
    if groups_given:
        raise Invalid(
            "Port security must be enabled and port must have an IP address in order to use "
            "security groups.",
            neutron_type="PortSecurityAndIPRequiredForSecurityGroups",
            errors={"security_groups": ["A port without port security uses no groups."]},
        )
    if groups_kept:
        raise Conflict(
            "Port has security group associated. Cannot disable port security or IP address "
            "until security group is removed.",
            neutron_type="PortSecurityPortHasSecurityGroup",
            errors={"port_security_enabled": ["Remove the security groups first."]},
        )


def refuse_mixed_statefulness(groups: list[SecurityGroup]) -> None:
    """Neutron's _validate_sgs_for_port: one port's connections are tracked or not, never
    both."""
    if len({group.stateful for group in groups}) > 1:
        raise Conflict(
            "Error Cannot apply both stateful and stateless security groups on the same port "
            "at the same time while attempting the operation.",
            neutron_type="SecurityGroupConflict",
            errors={
                "security_groups": [
                    "Stateful and stateless groups cannot be used together on one port."
                ]
            },
        )


def _write_fixed_ips(port: Port, wanted: list[tuple[Subnet, str | None]]) -> None:
    keep = {(subnet.id, address) for subnet, address in wanted if address}
    for fixed in list(port.fixed_ips.all()):
        if (fixed.subnet_id, fixed.ip_address) not in keep:
            fixed.delete()
    existing = {(f.subnet_id, f.ip_address) for f in port.fixed_ips.all()}
    taken: set[str] = set()
    for subnet, address in wanted:
        if address is None:
            address = allocate_ip(subnet, taken)
            if address is None:
                raise Conflict(
                    f"No more IP addresses available on network {port.network_id}.",
                    neutron_type="IpAddressGenerationFailure",
                    errors={"fixed_ips": [f"Subnet {subnet.cidr} is full."]},
                )
        taken.add(address)
        if (subnet.id, address) not in existing:
            FixedIP.objects.create(port=port, subnet=subnet, ip_address=address)


def _default_fixed_ips(network: Network) -> list[tuple[Subnet, str | None]]:
    """One address from the first subnet of each IP version, as Neutron does without SLAAC."""
    chosen: dict[int, Subnet] = {}
    for subnet in network.subnets.order_by("created_at", "id"):
        chosen.setdefault(subnet.ip_version, subnet)
    return [(subnet, None) for subnet in chosen.values()]


def _write_groups(port: Port, groups: list[SecurityGroup]) -> None:
    PortSecurityGroup.objects.filter(port=port).delete()
    PortSecurityGroup.objects.bulk_create(
        PortSecurityGroup(port=port, security_group=group, position=index)
        for index, group in enumerate(groups)
    )


def _write_pairs(port: Port, pairs: list[tuple[str, str]]) -> None:
    AllowedAddressPair.objects.filter(port=port).delete()
    AllowedAddressPair.objects.bulk_create(
        AllowedAddressPair(port=port, ip_address=ip, mac_address=mac) for ip, mac in pairs
    )


def _load_port(port_id: uuid.UUID) -> Port:
    return (
        Port.objects.select_related("host", "project")
        .prefetch_related("fixed_ips", "allowed_address_pairs", "group_links")
        .get(pk=port_id)
    )


def _firewall_changed(
    port: Port, group_ids: Iterable[str], reason: str, also_host: str | None = None
) -> None:
    """The port's own host changes, and so do the hosts whose rules name one of its groups as
    a remote group (the port's addresses are members of those groups' sets)."""
    hosts = {port.host.name} if port.host is not None else set()
    if also_host:
        hosts.add(also_host)
    dispatch.firewall_changed(reason, hosts=hosts, members_of=group_ids)


def _clean_host(actor: Actor, value: object, errors: Errors) -> Host | None:
    if value in (None, ""):
        return None
    require_admin(actor, "Binding a port to a host (binding:host_id)")
    name = clean_name(errors, value, "binding:host_id")
    return host_for_binding(name) if name else None


@dataclass
class _NewPort:
    """A port create's fields, cleaned."""

    values: dict[str, Any]  # the Port's own columns (name ... port_security_enabled, host)
    mac: str | None
    fixed: Any  # None: the network's default addresses
    groups: list[SecurityGroup]
    groups_given: bool
    pairs: Any


def _require_network(actor: Actor, project: Project, network: Network) -> None:
    if network.project_id != project.id and not network.shared and not is_admin(actor):
        raise NotFound(f"Network {network.id} could not be found.", neutron_type="NetworkNotFound")
    if not can_see_project(actor, network.project_id) and not network.shared:
        raise NotFound(f"Network {network.id} could not be found.", neutron_type="NetworkNotFound")


def _clean_new_port(
    actor: Actor, project: Project, network: Network, fields: dict[str, Any]
) -> _NewPort:
    errors = Errors()
    values: dict[str, Any] = {
        "name": clean_name(errors, fields.get("name", "")),
        "description": clean_description(errors, fields.get("description", "")),
        "device_owner": clean_description(errors, fields.get("device_owner", ""), "device_owner"),
    }
    if values["device_owner"] == ROUTER_INTERFACE_OWNER:
        errors.add("device_owner", "Use the router's add_router_interface to make its port.")
    values["device_id"] = clean_description(errors, fields.get("device_id", ""), "device_id")
    values["admin_state_up"] = clean_bool(
        errors, "admin_state_up", fields.get("admin_state_up", True)
    )
    values["port_security_enabled"] = clean_bool(
        errors, "port_security_enabled", fields.get("port_security_enabled", True)
    )
    mac: str | None = None
    if fields.get("mac_address") not in (None, ""):
        mac = clean_mac(errors, "mac_address", fields["mac_address"])
    fixed = _clean_fixed_ips(network, fields.get("fixed_ips"), errors, None)
    groups_value = fields.get("security_groups")
    groups = [] if groups_value is None else _clean_groups(actor, project, groups_value, errors)
    pairs = clean_address_pairs(errors, fields.get("allowed_address_pairs"), mac or "pending")
    values["host"] = _clean_host(actor, fields.get("host"), errors)
    errors.raise_if_any()
    return _NewPort(values, mac, fixed, groups, groups_value is not None, pairs)


def create_port(actor: Actor, project: Project, network: Network, **fields: Any) -> Port:
    """Fields: name, description, mac_address, fixed_ips, security_groups (None: the project's
    default group), port_security_enabled, allowed_address_pairs, host (a host name),
    device_owner, device_id, admin_state_up."""
    require_project_change(actor, project)
    _require_network(actor, project, network)
    refuse_fields(fields, PORT_FIELDS, UNRECOGNIZED)
    new = _clean_new_port(actor, project, network, fields)
    mac, fixed, groups, pairs = new.mac, new.fixed, new.groups, new.pairs
    security_on = new.values["port_security_enabled"]
    if not new.groups_given and security_on:
        groups = [ensure_default_group(project, actor)]
    if not security_on:
        _refuse_security_off_with(pairs_given=bool(pairs), groups_given=bool(groups))
    refuse_mixed_statefulness(groups)
    if mac and Port.objects.filter(network=network, mac_address=mac).exists():
        raise Conflict(
            f"Unable to complete operation for network {network.id}. The mac address {mac} "
            "is in use.",
            neutron_type="MacAddressInUse",
            errors={"mac_address": [f"{mac} is already used on this network."]},
        )
    try:
        with transaction.atomic():
            port = Port.objects.create(
                project=project,
                network=network,
                mac_address=mac or unused_mac(network.id),
                **new.values,
            )
            _write_fixed_ips(port, _default_fixed_ips(network) if fixed is None else fixed)
            _write_groups(port, groups)
            _write_pairs(
                port, [(ip, port.mac_address if m == "pending" else m) for ip, m in pairs or ()]
            )
            port = _load_port(port.id)
            after = port_to_dict(port)
            record(
                actor,
                AuditAction.CREATE,
                "port",
                port.id,
                port.name or port.device,
                project_id=project.id,
                after=after,
            )
            _firewall_changed(port, after["security_groups"], f"port {port.id} created")
    except IntegrityError as error:
        raise Conflict(
            "The port clashes with an existing one (MAC or IP address in use).",
            neutron_type="Conflict",
        ) from error
    return port


@dataclass
class _PortChanges:
    """A port update, cleaned: None for what the update leaves alone."""

    values: dict[str, Any]
    fixed: Any = None
    groups: list[SecurityGroup] | None = None
    pairs: list[tuple[str, str]] | None = None
    host_change: bool = False
    host: Host | None = None


def _clean_port_changes(actor: Actor, port: Port, changes: dict[str, Any]) -> _PortChanges:
    errors = Errors()
    cleaned = _PortChanges(clean_name_and_description(errors, changes))
    for field in ("device_owner", "device_id"):
        if field in changes:
            cleaned.values[field] = clean_description(errors, changes[field], field)
    for flag in ("admin_state_up", "port_security_enabled"):
        if flag in changes:
            cleaned.values[flag] = clean_bool(errors, flag, changes[flag])
    if "fixed_ips" in changes:
        cleaned.fixed = _clean_fixed_ips(port.network, changes["fixed_ips"] or [], errors, port)
    if "security_groups" in changes:
        cleaned.groups = _clean_groups(
            actor, port.project, changes["security_groups"] or [], errors
        )
    if "allowed_address_pairs" in changes:
        cleaned.pairs = clean_address_pairs(
            errors, changes["allowed_address_pairs"] or [], port.mac_address
        )
    if "host" in changes:
        if changes["host"] in (None, "") and port.host_id:
            require_admin(actor, "Unbinding a port from its host (binding:host_id)")
        cleaned.host_change = True
        cleaned.host = _clean_host(actor, changes["host"], errors)
    errors.raise_if_any()
    return cleaned


def _write_port_changes(locked: Port, cleaned: _PortChanges) -> None:
    # The port is DOWN again until its host applies the state that carries this change.
    locked.host_revision = None
    for key, value in cleaned.values.items():
        setattr(locked, key, value)
    if cleaned.host_change:
        locked.host = cleaned.host
    if cleaned.fixed is not None:
        _write_fixed_ips(locked, cleaned.fixed)
    if cleaned.groups is not None:
        _write_groups(locked, cleaned.groups)
    if cleaned.pairs is not None:
        _write_pairs(locked, cleaned.pairs)
    locked.save()


# What makes a router's port its router's: its address, owner and binding stay as made.
ROUTER_PORT_FIXED = ("fixed_ips", "device_owner", "device_id", "host")


def _refuse_router_port_changes(
    port: Port, changes: dict[str, Any], current: dict[str, Any]
) -> None:
    """A router interface's port is changed through its router (sgweb.routers), and no port
    becomes one by saying so (the router would not know it)."""
    names = {"fixed_ips": "fixed_ips", "device_owner": "device_owner", "device_id": "device_id",
             "host": "binding:host_id"}  # fmt: skip
    if port.device_owner == ROUTER_INTERFACE_OWNER:
        changed = [
            field
            for field in ROUTER_PORT_FIXED
            if field in changes and changes[field] != current[names[field]]
        ]
        if changed:
            raise Conflict(
                f"Port {port.id} belongs to router {port.device_id}: its {changed[0]} cannot "
                "be changed via the port API.",
                neutron_type="L3PortInUse",
                errors={field: ["Owned by the router."] for field in changed},
            )
    elif changes.get("device_owner") == ROUTER_INTERFACE_OWNER:
        raise Invalid(
            f"device_owner {ROUTER_INTERFACE_OWNER} is set by adding a router interface.",
            errors={"device_owner": ["Use the router's add_router_interface instead."]},
        )


def update_port(actor: Actor, port: Port, **changes: Any) -> Port:
    """Changes: any of PORT_UPDATABLE; `host` is a host name ("" or None unbinds)."""
    require_change(
        actor, port.project_id, not_found=_port_not_found(port.id), neutron_type="PortNotFound"
    )
    refuse_fields(changes, PORT_UPDATABLE, CANNOT_CHANGE)
    port = _load_port(port.id)
    before = port_to_dict(port)
    _refuse_router_port_changes(port, changes, before)
    cleaned = _clean_port_changes(actor, port, changes)
    security_on = cleaned.values.get("port_security_enabled", port.port_security_enabled)
    groups, pairs = cleaned.groups, cleaned.pairs
    final_groups = before["security_groups"] if groups is None else [str(g.id) for g in groups]
    if not security_on:
        _refuse_security_off_with(
            pairs_given=bool(pairs),
            groups_given=bool(groups),
            pairs_kept=pairs is None and bool(before["allowed_address_pairs"]),
            groups_kept=groups is None and bool(before["security_groups"]),
        )
    if groups is not None:
        refuse_mixed_statefulness(groups)
    try:
        with transaction.atomic():
            locked = Port.objects.select_for_update().get(pk=port.pk)
            _write_port_changes(locked, cleaned)
            reloaded = _load_port(locked.pk)
            after = port_to_dict(reloaded)
            if _without_bookkeeping(after) == _without_bookkeeping(before):
                transaction.set_rollback(True)
                return port
            reloaded.bump_revision()
            Port.objects.filter(pk=reloaded.pk).update(revision_number=reloaded.revision_number)
            after["revision_number"] = reloaded.revision_number
            record(
                actor,
                AuditAction.UPDATE,
                "port",
                reloaded.id,
                reloaded.name or reloaded.device,
                project_id=reloaded.project_id,
                before=before,
                after=after,
            )
            _firewall_changed(
                reloaded,
                set(before["security_groups"]) | set(final_groups),
                f"port {reloaded.id} updated",
                also_host=before["binding:host_id"],
            )
    except IntegrityError as error:
        raise Conflict(
            "The change clashes with an existing port (IP address in use).",
            neutron_type="IpAddressAlreadyAllocated",
        ) from error
    return reloaded


def _without_bookkeeping(data: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in data.items()
        if key not in ("updated_at", "revision_number", "status")
    }


def delete_port(actor: Actor, port: Port) -> None:
    require_change(
        actor, port.project_id, not_found=_port_not_found(port.id), neutron_type="PortNotFound"
    )
    if port.device_owner == ROUTER_INTERFACE_OWNER:
        # Its router owns it: removing the router's interface removes it (Neutron's rule).
        raise Conflict(
            f"Port {port.id} cannot be deleted directly via the port API: has device owner "
            f"{ROUTER_INTERFACE_OWNER}.",
            neutron_type="L3PortInUse",
            errors={"__all__": ["Remove the router's interface on this subnet instead."]},
        )
    with transaction.atomic():
        loaded = _load_port(port.id)
        before = port_to_dict(loaded)
        _firewall_changed(loaded, before["security_groups"], f"port {loaded.id} deleted")
        port_id, project_id = loaded.id, loaded.project_id
        repr_ = loaded.name or loaded.device
        loaded.delete()
        record(
            actor,
            AuditAction.DELETE,
            "port",
            port_id,
            repr_,
            project_id=project_id,
            before=before,
        )
