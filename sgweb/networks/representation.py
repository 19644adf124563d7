"""Networks, subnets and ports as Neutron's API dictionaries (also the audit snapshots)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sgweb.networks.models import (
    AllowedAddressPair,
    FixedIP,
    Network,
    Port,
    PortSecurityGroup,
    Subnet,
)
from sgweb.tenancy.representation import standard_fields


def network_to_dict(network: Network) -> dict[str, Any]:
    """Uses `network.subnets.all()`; prefetch it when listing."""
    return {
        "id": str(network.id),
        "name": network.name,
        "description": network.description,
        "admin_state_up": network.admin_state_up,
        "shared": network.shared,
        "status": "ACTIVE" if network.admin_state_up else "DOWN",
        "subnets": [str(subnet.id) for subnet in network.subnets.all()],
        "mtu": 1500,
        "port_security_enabled": True,
        "router:external": False,
        "availability_zones": [],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "is_default": False,
        **standard_fields(network),
    }


def subnet_to_dict(subnet: Subnet) -> dict[str, Any]:
    return {
        "id": str(subnet.id),
        "name": subnet.name,
        "description": subnet.description,
        "network_id": str(subnet.network_id),
        "ip_version": subnet.ip_version,
        "cidr": subnet.cidr,
        "gateway_ip": subnet.gateway_ip,
        "enable_dhcp": subnet.enable_dhcp,
        "dhcp_servers": list(subnet.dhcp_servers),
        "allocation_pools": list(subnet.allocation_pools),
        "dns_nameservers": [],
        "host_routes": [],
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "service_types": [],
        **standard_fields(subnet),
    }


def port_to_dict(
    port: Port,
    *,
    fixed_ips: list[dict[str, str]] | None = None,
    pairs: list[dict[str, str]] | None = None,
    group_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Reads the port's fixed_ips, allowed_address_pairs, group_links and host unless given
    (`ports_to_dicts` gives them for a whole page in three queries)."""
    host_name = port.host.name if port.host is not None else ""
    if fixed_ips is None:
        fixed_ips = [
            {"subnet_id": str(fixed.subnet_id), "ip_address": fixed.ip_address}
            for fixed in port.fixed_ips.all()
        ]
    if pairs is None:
        pairs = [
            {"ip_address": pair.ip_address, "mac_address": pair.mac_address}
            for pair in port.allowed_address_pairs.all()
        ]
    if group_ids is None:
        group_ids = port.ordered_security_group_ids()
    return {
        "id": str(port.id),
        "name": port.name,
        "description": port.description,
        "network_id": str(port.network_id),
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": pairs,
        "security_groups": group_ids,
        "port_security_enabled": port.port_security_enabled,
        "binding:host_id": host_name,
        "binding:vif_type": "bridge" if host_name else "unbound",
        "binding:vnic_type": "normal",
        "binding:profile": {},
        "binding:vif_details": {"port_filter": True} if host_name else {},
        "extra_dhcp_opts": [],
        "device": port.device,
        **standard_fields(port),
    }


def ports_to_dicts(ports: Sequence[Port]) -> list[dict[str, Any]]:
    """Many ports (with `host` selected): three row queries instead of per-port prefetches."""
    ids = [port.pk for port in ports]
    fixed: dict[Any, list[dict[str, str]]] = defaultdict(list)
    pairs: dict[Any, list[dict[str, str]]] = defaultdict(list)
    groups: dict[Any, list[str]] = defaultdict(list)
    if ids:
        for port_id, subnet_id, address in (
            FixedIP.objects.filter(port_id__in=ids)
            .order_by("id")
            .values_list("port_id", "subnet_id", "ip_address")
        ):
            fixed[port_id].append({"subnet_id": str(subnet_id), "ip_address": address})
        for port_id, address, mac in (
            AllowedAddressPair.objects.filter(port_id__in=ids)
            .order_by("id")
            .values_list("port_id", "ip_address", "mac_address")
        ):
            pairs[port_id].append({"ip_address": address, "mac_address": mac})
        for port_id, group_id in (
            PortSecurityGroup.objects.filter(port_id__in=ids)
            .order_by("position", "id")
            .values_list("port_id", "security_group_id")
        ):
            groups[port_id].append(str(group_id))
    return [
        port_to_dict(
            port,
            fixed_ips=fixed.get(port.pk, []),
            pairs=pairs.get(port.pk, []),
            group_ids=groups.get(port.pk, []),
        )
        for port in ports
    ]
