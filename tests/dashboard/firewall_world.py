"""A firewalled router for the firewall page tests: rules, a policy holding them and a group
on one of the router's interfaces, all of project A, made through the fwaas actions."""

from __future__ import annotations

from dataclasses import dataclass

from sgweb.audit.models import AuditEntry
from sgweb.fwaas import actions
from sgweb.fwaas.models import FirewallGroup, FirewallPolicy, FirewallRule
from tests.controlplane.fwaas_factories import RoutedPair, routed_pair
from tests.personas import Personas


@dataclass
class Firewalled:
    pair: RoutedPair
    allow_ssh: FirewallRule
    deny_db: FirewallRule
    policy: FirewallPolicy  # prod-egress: allow-ssh, deny-db
    group: FirewallGroup  # app-edge: egress prod-egress on the app interface


def firewalled(people: Personas) -> Firewalled:
    pair = routed_pair(people.adam, people.alice, people.project_a)
    allow_ssh, deny_db = (
        actions.create_rule(people.alice, people.project_a, name=name, protocol="tcp",
                            destination_port=port, action=action)
        for name, port, action in (("allow-ssh", "22", "allow"), ("deny-db", "5432", "deny"))
    )  # fmt: skip
    policy = actions.create_policy(
        people.alice, people.project_a, name="prod-egress", firewall_rules=[allow_ssh, deny_db]
    )
    group = actions.create_group(people.alice, people.project_a, name="app-edge",
                                 egress_policy=policy, ports=[pair.app_port])  # fmt: skip
    return Firewalled(pair, allow_ssh, deny_db, policy, group)


def audited(object_type: str, object_id: object) -> list[str]:
    """The audit log's actions on one object, oldest first."""
    entries = AuditEntry.objects.filter(object_type=object_type, object_id=str(object_id))
    return list(entries.order_by("at").values_list("action", flat=True))
