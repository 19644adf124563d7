"""Changing networks, subnets, ports and hosts: permission, validation, DB + audit, dispatch.

Refusals raise the `sgweb.tenancy.errors.ActionError` family and change nothing. The dashboard
and the API call these names (one module per concept underneath).
"""

from sgweb.networks.actions.common import UNSET
from sgweb.networks.actions.hosts import create_host, delete_host, host_for_binding
from sgweb.networks.actions.networks import (
    create_network,
    create_subnet,
    delete_network,
    delete_subnet,
    update_network,
    update_subnet,
)
from sgweb.networks.actions.ports import (
    PORT_FIELDS,
    PORT_UPDATABLE,
    create_port,
    delete_port,
    update_port,
)

__all__ = [
    "PORT_FIELDS",
    "PORT_UPDATABLE",
    "UNSET",
    "create_host",
    "create_network",
    "create_port",
    "create_subnet",
    "delete_host",
    "delete_network",
    "delete_port",
    "delete_subnet",
    "host_for_binding",
    "update_network",
    "update_port",
    "update_subnet",
]
