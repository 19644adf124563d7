"""The adapter from the database to the FWaaS compiler's input: one network node's
`NetworkNodeState` (sgweb.firewall.fwaas.model), built in a fixed number of queries.

Deterministic: routers, interfaces, groups and ports sorted by id; rules in policy order.
Routers that are administratively down are left out (their namespace holds nothing).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sgweb.firewall.fwaas import model
from sgweb.fwaas.models import FirewallGroup, FirewallGroupPort, FirewallPolicy, PolicyRule
from sgweb.networks.models import Host
from sgweb.routers.models import Router, RouterInterface


def _rule(rule: Any) -> model.FirewallRule:
    return model.FirewallRule(
        id=str(rule.id),
        name=rule.name,
        protocol=rule.protocol,
        ip_version=rule.ip_version,
        source_ip_address=rule.source_ip_address,
        destination_ip_address=rule.destination_ip_address,
        source_port=rule.source_port,
        destination_port=rule.destination_port,
        action=rule.action,
        enabled=rule.enabled,
    )


def _policies(ids: set[Any]) -> dict[Any, model.FirewallPolicy]:
    rules: dict[Any, list[model.FirewallRule]] = defaultdict(list)
    links = PolicyRule.objects.filter(policy_id__in=ids).select_related("rule")
    for link in links.order_by("policy_id", "position"):
        rules[link.policy_id].append(_rule(link.rule))
    return {
        policy.pk: model.FirewallPolicy(
            id=str(policy.pk), name=policy.name, rules=tuple(rules[policy.pk])
        )
        for policy in FirewallPolicy.objects.filter(pk__in=ids)
    }


def _address(interface: RouterInterface) -> str:
    """The router's address on the subnet: its port's (the gateway when it was added)."""
    for fixed in interface.port.fixed_ips.all():
        if fixed.subnet_id == interface.subnet_id:
            return fixed.ip_address
    return interface.subnet.gateway_ip or ""


def network_node_state(host: Host | str) -> model.NetworkNodeState:
    """Everything the routers on `host` (a network node) are compiled from."""
    name = host if isinstance(host, str) else host.name
    routers = list(Router.objects.filter(host__name=name, admin_state_up=True).order_by("id"))
    interfaces: dict[Any, list[RouterInterface]] = defaultdict(list)
    for interface in (
        RouterInterface.objects.filter(router__in=routers)
        .select_related("port", "subnet", "subnet__network")
        .prefetch_related("port__fixed_ips")
        .order_by("port_id")
    ):
        interfaces[interface.router_id].append(interface)
    router_of_port = {
        interface.port_id: router_id
        for router_id, found in interfaces.items()
        for interface in found
    }
    # The groups on these routers' ports, and which of the ports each group holds here.
    ports_of: dict[Any, dict[Any, list[str]]] = defaultdict(lambda: defaultdict(list))
    for link in FirewallGroupPort.objects.filter(port_id__in=router_of_port).order_by("port_id"):
        ports_of[router_of_port[link.port_id]][link.group_id].append(str(link.port_id))
    group_ids = {group_id for groups in ports_of.values() for group_id in groups}
    groups = {group.pk: group for group in FirewallGroup.objects.filter(pk__in=group_ids)}
    policy_ids = {
        policy_id
        for group in groups.values()
        for policy_id in (group.ingress_policy_id, group.egress_policy_id)
        if policy_id is not None
    }
    policies = _policies(policy_ids)

    def group_state(group: FirewallGroup, ports: list[str]) -> model.FirewallGroup:
        return model.FirewallGroup(
            id=str(group.pk),
            name=group.name,
            ingress_policy=policies.get(group.ingress_policy_id),
            egress_policy=policies.get(group.egress_policy_id),
            ports=tuple(sorted(ports)),
            admin_state_up=group.admin_state_up,
        )

    states = []
    for router in routers:
        router_interfaces = tuple(
            model.RouterInterface(
                port_id=str(interface.port_id),
                network_id=str(interface.subnet.network_id),
                subnet_id=str(interface.subnet_id),
                cidr=interface.subnet.cidr,
                ip_address=_address(interface),
                mac_address=interface.port.mac_address,
                network_name=interface.subnet.network.name,
            )
            for interface in interfaces[router.pk]
        )
        here = ports_of.get(router.pk, {})
        states.append(
            model.RouterState(
                router=model.Router(
                    id=str(router.pk), name=router.name, interfaces=router_interfaces
                ),
                firewall_groups=tuple(
                    group_state(groups[group_id], here[group_id])
                    for group_id in sorted(here, key=str)
                ),
            )
        )
    return model.NetworkNodeState(host=name, routers=tuple(states))
