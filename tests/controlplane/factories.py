"""Small builders for control-plane tests (they go through the actions, as users would)."""

from __future__ import annotations

from sgweb.networks import actions as network_actions
from sgweb.networks.models import Network, Port, Subnet
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.models import Project


def network_with_subnet(
    actor, project: Project, cidr: str = "192.0.2.0/24", name: str = "net"
) -> tuple[Network, Subnet]:
    network = network_actions.create_network(actor, project, name=name)
    subnet = network_actions.create_subnet(actor, network, cidr=cidr, name=f"{name}-v4")
    return network, subnet


def group(actor, project: Project, name: str = "web") -> SecurityGroup:
    return security_actions.create_security_group(actor, project, name=name)


def port(actor, project: Project, network: Network, **fields) -> Port:
    return network_actions.create_port(actor, project, network, **fields)
