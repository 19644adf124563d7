"""In-memory stand-ins for Redis and the control queue, for the agent's unit tests."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sgweb.firewall import codec
from sgweb.firewall.model import (
    EGRESS,
    INGRESS,
    IPV4,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.kernel.conntrack import CutResult
from sgweb.wire import sync as protocol
from worker.conntrack import Cut

WEB = "5f0c3f9e-0000-4000-8000-00000000a001"
DB = "5f0c3f9e-0000-4000-8000-00000000a002"
PORT_A = "6e3f2eda-3230-45e8-9be5-f382af5b83ea"
PORT_B = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


@dataclass
class MemoryStore:
    desired: protocol.Desired | None = None
    fetches: int = 0
    beats: list[dict[str, Any]] = field(default_factory=list)
    applied: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, revision: int, state: HostState) -> protocol.Desired:
        text = codec.dumps(state)
        self.desired = protocol.parse_desired(
            protocol.desired_document(revision, codec.digest(text), text, time.time())
        )
        return self.desired

    def desired_revision(self) -> int | None:
        return self.desired.revision if self.desired else None

    def fetch(self) -> protocol.Desired | None:
        self.fetches += 1
        return self.desired

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None:
        self.beats.append(payload)

    def set_applied(self, report: dict[str, Any]) -> None:
        self.applied.append(report)

    def clear_heartbeat(self) -> None:
        pass

    def set_applied_state(self, state: dict[str, Any]) -> None:
        self.last_applied_state = state

    def applied_state(self) -> dict[str, Any] | None:
        return getattr(self, "last_applied_state", None)


@dataclass
class RecordingReporter:
    applies: list[dict[str, Any]] = field(default_factory=list)
    drifts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def apply(self, report: dict[str, Any]) -> None:
        self.applies.append(report)

    def drift(self, report: dict[str, Any]) -> None:
        self.drifts.append(report)

    def request_state(self, reason: str) -> None:
        self.requests.append(reason)


@dataclass
class RecordingCutter:
    """Stands in for the netlink cutter: remembers each batch, deletes `per_cut` per cut."""

    batches: list[list[Cut]] = field(default_factory=list)
    per_cut: int = 1

    def cut(self, cuts: Sequence[Cut]) -> CutResult:
        self.batches.append(list(cuts))
        return CutResult(self.per_cut * len(cuts), len(cuts), 0, 0.0)

    @property
    def cuts(self) -> list[Cut]:
        return [cut for batch in self.batches for cut in batch]


def rule(
    rule_id: str, direction: str = INGRESS, ethertype: str = IPV4, **fields: Any
) -> SecurityGroupRule:
    return SecurityGroupRule(id=rule_id, direction=direction, ethertype=ethertype, **fields)


def state(
    *,
    web_rules: tuple[SecurityGroupRule, ...] = (),
    db_members: tuple[str, ...] = ("192.0.2.20",),
    port_b_security: bool = True,
) -> HostState:
    """Two ports: A in web (whose rules may name db as remote), B in db."""
    web = SecurityGroup(
        id=WEB,
        name="web",
        rules=(rule("e-web", EGRESS), *web_rules),
    )
    db = SecurityGroup(id=DB, name="db", rules=(rule("e-db", EGRESS),))
    ports = (
        Port(
            id=PORT_A,
            mac_address="fa:16:3e:f3:1e:c0",
            fixed_ips=("192.0.2.10",),
            security_groups=(WEB,),
            dhcp_servers=("192.0.2.2",),
            host="compute1",
            network_id="net1",
        ),
        Port(
            id=PORT_B,
            mac_address="fa:16:3e:00:00:20",
            fixed_ips=("192.0.2.20",),
            security_groups=(DB,) if port_b_security else (),
            port_security_enabled=port_b_security,
            host="compute1",
            network_id="net1",
        ),
    )
    return HostState(
        ports=ports,
        security_groups=(web, db),
        remote_group_members=((DB, db_members), (WEB, ("192.0.2.10",))),
        host="compute1",
    )


SSH = rule("r-ssh", protocol="tcp", port_range_min=22, port_range_max=22)
FROM_DB = rule("r-db", protocol="icmp", remote_group_id=DB)
