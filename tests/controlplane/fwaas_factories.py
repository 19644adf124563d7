"""Builders for router and FWaaS tests: a network node, two networks and a router between."""

from __future__ import annotations

from dataclasses import dataclass

from sgweb.networks.actions import create_host
from sgweb.networks.models import Host, Network, Port, Subnet
from sgweb.routers import actions as router_actions
from sgweb.routers.models import Router
from tests.controlplane.factories import network_with_subnet


@dataclass
class RoutedPair:
    node: Host
    web: Network
    web_subnet: Subnet
    app: Network
    app_subnet: Subnet
    router: Router
    web_port: Port  # the router's interface on net-web
    app_port: Port


def routed_pair(adam, alice, project) -> RoutedPair:
    node = create_host(adam, name="network1", network_node=True)
    web, web_subnet = network_with_subnet(alice, project, "192.0.2.0/24", "net-web")
    app, app_subnet = network_with_subnet(alice, project, "198.51.100.0/24", "net-app")
    router = router_actions.create_router(alice, project, name="r1")
    web_port = router_actions.add_interface(alice, router, web_subnet).port
    app_port = router_actions.add_interface(alice, router, app_subnet).port
    return RoutedPair(node, web, web_subnet, app, app_subnet, router, web_port, app_port)
