"""A network node's firewall accounting documents as a test writes them, and the rules and
policy they name (issue 16)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sgweb.fwaas import actions as fwaas_actions
from sgweb.fwaas.models import FirewallPolicy, FirewallRule
from tests.accounting.documents import Agent

GROUP = "fa11ed00-0000-4000-8000-00000000000a"


@dataclass
class Firewall:
    icmp: FirewallRule
    deny_db: FirewallRule
    policy: FirewallPolicy


def alices_firewall(alice, project) -> Firewall:
    icmp = fwaas_actions.create_rule(alice, project, name="allow-icmp", protocol="icmp",
                                     action="allow")  # fmt: skip
    deny_db = fwaas_actions.create_rule(alice, project, name="deny-db", protocol="tcp",
                                        destination_port="5432", action="deny")  # fmt: skip
    policy = fwaas_actions.create_policy(alice, project, name="prod-egress",
                                         firewall_rules=[icmp, deny_db])  # fmt: skip
    return Firewall(icmp, deny_db, policy)


def fw_hit(rule: FirewallRule, packets: int, router: str = "r1", direction: str = "egress",
           verdict: str = "accept") -> list[Any]:  # fmt: skip
    return ["fw-rule", str(rule.id), router, GROUP, direction, verdict, packets, packets * 84]


def fw_builtin(kind: str, packets: int, router: str = "r1") -> list[Any]:
    return [kind, None, router, GROUP, "egress", "drop", packets, packets * 84]


class NodeAgent(Agent):
    """Numbers a network node's firewall readings the way its agent run does."""

    def firewall(self, rules: list[list[Any]], every_s: float = 10.0) -> dict[str, Any]:
        doc = self.document([], every_s=every_s)
        del doc["origins"], doc["chains"]
        doc["rules"] = rules
        return doc
