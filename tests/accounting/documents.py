"""Agent documents (`sgweb.wire.accounting`) as a test writes them, and the objects they name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sgweb.networks.models import Port
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from tests.controlplane import factories

RUN = 1_800_000_000.0  # an agent run (its start time)


@dataclass
class Lab:
    group: SecurityGroup
    icmp: SecurityGroupRule
    ssh: SecurityGroupRule
    port: Port


def alices_lab(alice, project) -> Lab:
    network, _subnet = factories.network_with_subnet(alice, project)
    group = factories.group(alice, project, name="web")
    icmp = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="icmp"
    )
    ssh = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22
    )
    port = factories.port(alice, project, network, security_groups=[str(group.id)])
    return Lab(group, icmp, ssh, port)


@dataclass
class Agent:
    """Numbers readings the way an agent run does."""

    host: str = "h1"
    run: float = RUN
    seq: int = 0
    at: float = RUN + 100.0
    base: list[Any] | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    def document(self, origins: list[list[Any]], chains: list[list[Any]] | None = None,
                 every_s: float = 10.0) -> dict[str, Any]:  # fmt: skip
        self.seq += 1
        started, self.at = self.at, self.at + every_s
        doc = {
            "host": self.host, "reading": [self.run, self.seq], "base": self.base,
            "started_at": started, "at": self.at, "origins": origins,
            "chains": chains or [], "read_ms": 3.5,
        }  # fmt: skip
        self.base = [self.run, self.seq]
        self.sent.append(doc)
        return doc


def rule_hit(lab: Lab, rule: SecurityGroupRule, packets: int, size: int) -> list[Any]:
    return ["sg-rule", str(rule.id), str(lab.port.id), "ingress", "accept", packets, size]


def dropped(lab: Lab, packets: int, direction: str = "ingress") -> list[Any]:
    return ["fallback", None, str(lab.port.id), direction, "drop", packets, packets * 84]
