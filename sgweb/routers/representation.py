"""Routers and their interfaces as Neutron's API dictionaries (also the audit snapshots)."""

from __future__ import annotations

from typing import Any

from sgweb.routers.models import Router, RouterInterface
from sgweb.tenancy.representation import standard_fields


def router_to_dict(router: Router) -> dict[str, Any]:
    return {
        "id": str(router.id),
        "name": router.name,
        "description": router.description,
        "admin_state_up": router.admin_state_up,
        "status": router.status,
        # Routing only (issue 16): no external gateway, extra routes, DVR or HA.
        "external_gateway_info": None,
        "routes": [],
        "distributed": False,
        "ha": False,
        "flavor_id": None,
        "availability_zones": [],
        "availability_zone_hints": [],
        **standard_fields(router),
    }


def interface_to_dict(interface: RouterInterface) -> dict[str, Any]:
    """The answer to add/remove_router_interface, as Neutron gives it."""
    project = interface.router.project_id.hex
    return {
        "id": str(interface.router_id),
        "tenant_id": project,
        "project_id": project,
        "port_id": str(interface.port_id),
        "network_id": str(interface.subnet.network_id),
        "subnet_id": str(interface.subnet_id),
        "subnet_ids": [str(interface.subnet_id)],
    }
