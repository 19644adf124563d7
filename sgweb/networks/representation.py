"""Networks, subnets and ports as Neutron's API dictionaries (also the audit snapshots)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Model

from sgweb.api.query import driver_cursor
from sgweb.networks.models import (
    AllowedAddressPair,
    FixedIP,
    Network,
    Port,
    PortSecurityGroup,
    Subnet,
    port_device,
    port_status,
)
from sgweb.tenancy.representation import standard_fields, standard_fields_of_row, uuid_text


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


# The columns of a port a list reads as `.values()` rows (the host's through its join).
PORT_COLUMNS = (
    "id",
    "name",
    "description",
    "network_id",
    "mac_address",
    "admin_state_up",
    "device_id",
    "device_owner",
    "port_security_enabled",
    "host_revision",
    "host__name",
    "host__status",
    "host__applied_revision",
    "project_id",
    "created_at",
    "updated_at",
    "revision_number",
)


def port_row(port: Port) -> dict[str, Any]:
    """A port as the row `PORT_COLUMNS` reads (reads `port.host`)."""
    host = port.host
    return {
        "id": port.id,
        "name": port.name,
        "description": port.description,
        "network_id": port.network_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "port_security_enabled": port.port_security_enabled,
        "host_revision": port.host_revision,
        "host__name": host.name if host is not None else None,
        "host__status": host.status if host is not None else None,
        "host__applied_revision": host.applied_revision if host is not None else None,
        "project_id": port.project_id,
        "created_at": port.created_at,
        "updated_at": port.updated_at,
        "revision_number": port.revision_number,
    }


def port_row_to_dict(
    row: dict[str, Any],
    *,
    fixed_ips: list[dict[str, str]],
    pairs: list[dict[str, str]],
    group_ids: list[str],
) -> dict[str, Any]:
    """A port's dictionary from its row: lists of thousands of ports build no model instances,
    and `port_to_dict` goes through here, so both always agree."""
    host_name = row["host__name"] or ""
    port_id = uuid_text(row["id"])
    return {
        "id": port_id,
        "name": row["name"],
        "description": row["description"],
        "network_id": uuid_text(row["network_id"]),
        "mac_address": row["mac_address"],
        "admin_state_up": row["admin_state_up"],
        "status": port_status(
            row["admin_state_up"],
            row["host_revision"],
            row["host__status"],
            row["host__applied_revision"],
        ),
        "device_id": row["device_id"],
        "device_owner": row["device_owner"],
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": pairs,
        "security_groups": group_ids,
        "port_security_enabled": row["port_security_enabled"],
        "binding:host_id": host_name,
        "binding:vif_type": "bridge" if host_name else "unbound",
        "binding:vnic_type": "normal",
        "binding:profile": {},
        "binding:vif_details": {"port_filter": True} if host_name else {},
        "extra_dhcp_opts": [],
        "device": port_device(port_id),
        **standard_fields_of_row(row),
    }


def port_to_dict(port: Port) -> dict[str, Any]:
    """Reads the port's fixed_ips, allowed_address_pairs, group_links and host."""
    return port_row_to_dict(
        port_row(port),
        fixed_ips=[
            {"subnet_id": str(fixed.subnet_id), "ip_address": fixed.ip_address}
            for fixed in port.fixed_ips.all()
        ],
        pairs=[
            {"ip_address": pair.ip_address, "mac_address": pair.mac_address}
            for pair in port.allowed_address_pairs.all()
        ],
        group_ids=port.ordered_security_group_ids(),
    )


def ports_to_dicts(ports: Sequence[Port]) -> list[dict[str, Any]]:
    """Many ports (with `host` selected): see `port_rows_to_dicts`."""
    return port_rows_to_dicts([port_row(port) for port in ports])


def port_rows_to_dicts(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Many ports from their rows (read by Django or by the driver: `driver_rows`): three
    queries for their addresses, pairs and groups instead of per-port prefetches."""
    fixed: dict[str, list[dict[str, str]]] = defaultdict(list)
    pairs: dict[str, list[dict[str, str]]] = defaultdict(list)
    groups: dict[str, list[str]] = defaultdict(list)
    if rows:
        ids = _database_ids([row["id"] for row in rows])
        for port_id, subnet_id, address in _port_links(FixedIP, ids, "subnet_id, ip_address"):
            fixed[uuid_text(port_id)].append(
                {"subnet_id": uuid_text(subnet_id), "ip_address": address}
            )
        for port_id, address, mac in _port_links(
            AllowedAddressPair, ids, "ip_address, mac_address"
        ):
            pairs[uuid_text(port_id)].append({"ip_address": address, "mac_address": mac})
        for port_id, group_id in _port_links(
            PortSecurityGroup, ids, "security_group_id", order="position, id"
        ):
            groups[uuid_text(port_id)].append(uuid_text(group_id))
    dicts = []
    for row in rows:
        port_id = uuid_text(row["id"])
        dicts.append(
            port_row_to_dict(
                row,
                fixed_ips=fixed.get(port_id, []),
                pairs=pairs.get(port_id, []),
                group_ids=groups.get(port_id, []),
            )
        )
    return dicts


def _database_ids(values: list[Any]) -> list[Any]:
    """Port ids as the database compares them: what the driver read is passed back as it is
    (SQLite's hex text, PostgreSQL's uuid.UUID); uuid.UUID objects are prepared by the field."""
    field = Port._meta.pk
    assert field is not None
    return [
        value if type(value) is str else field.get_db_prep_value(value, connection)
        for value in values
    ]


def _port_links(
    model: type[Model], ids: list[Any], columns: str, order: str = "id"
) -> list[tuple[Any, ...]]:
    """(port_id, *columns) of a page's ports' rows of `model`, read by the driver: the ids are
    bound as they are, without Django preparing each of them again."""
    table = connection.ops.quote_name(model._meta.db_table)
    marks = ", ".join(["%s"] * len(ids))
    with driver_cursor(connection) as cursor:
        cursor.execute(
            f"SELECT port_id, {columns} FROM {table} WHERE port_id IN ({marks}) ORDER BY {order}",
            ids,
        )
        return list(cursor.fetchall())
