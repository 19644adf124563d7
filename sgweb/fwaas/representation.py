"""Firewall rules, policies and groups as Neutron's FWaaS v2 dictionaries (also audit)."""

from __future__ import annotations

from typing import Any

from sgweb.fwaas.choices import FirewallGroupStatus
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from sgweb.fwaas.status import failed_nodes
from sgweb.networks.choices import AGENT_SILENT, HostStatus
from sgweb.tenancy.representation import standard_fields


def rule_to_dict(rule: FirewallRule) -> dict[str, Any]:
    return {
        "id": str(rule.id),
        "name": rule.name,
        "description": rule.description,
        "protocol": rule.protocol,
        "ip_version": rule.ip_version,
        "source_ip_address": rule.source_ip_address,
        "destination_ip_address": rule.destination_ip_address,
        "source_port": rule.source_port,
        "destination_port": rule.destination_port,
        "action": rule.action,
        "enabled": rule.enabled,
        "shared": rule.shared,
        # v2: the policies the rule is in.
        "firewall_policy_id": sorted(str(link.policy_id) for link in rule.policy_links.all()),
        "source_firewall_group_id": None,
        "destination_firewall_group_id": None,
        **standard_fields(rule),
    }


def policy_to_dict(policy: FirewallPolicy) -> dict[str, Any]:
    links = sorted(policy.rule_links.all(), key=lambda link: link.position)
    return {
        "id": str(policy.id),
        "name": policy.name,
        "description": policy.description,
        "firewall_rules": [str(link.rule_id) for link in links],
        "audited": policy.audited,
        "shared": policy.shared,
        **standard_fields(policy),
    }


def group_status(group: FirewallGroup) -> str:
    """INACTIVE without ports; else follows the network nodes of the ports' routers: PENDING
    while one has no running node, ERROR when one failed to apply, ACTIVE otherwise."""
    if not group.admin_state_up:
        return FirewallGroupStatus.DOWN
    ports = [link.port for link in group.port_links.all()]
    if not ports:
        return FirewallGroupStatus.INACTIVE
    status = FirewallGroupStatus.ACTIVE
    nodes = set()
    for port in ports:
        interface = getattr(port, "router_interface", None)
        host = interface.router.host if interface is not None else None
        if host is None or host.status in AGENT_SILENT:
            status = FirewallGroupStatus.PENDING
        elif host.status == HostStatus.FAILED:
            return FirewallGroupStatus.ERROR
        else:
            nodes.add(host.name)
    # A node whose agent refused its router state (the port path may be fine there).
    if nodes and failed_nodes(nodes):
        return FirewallGroupStatus.ERROR
    return status


def group_to_dict(group: FirewallGroup) -> dict[str, Any]:
    return {
        "id": str(group.id),
        "name": group.name,
        "description": group.description,
        "ingress_firewall_policy_id": (
            str(group.ingress_policy_id) if group.ingress_policy_id else None
        ),
        "egress_firewall_policy_id": str(group.egress_policy_id)
        if group.egress_policy_id
        else None,
        "ports": sorted(str(link.port_id) for link in group.port_links.all()),
        "admin_state_up": group.admin_state_up,
        "shared": group.shared,
        "status": group_status(group),
        **standard_fields(group),
    }
