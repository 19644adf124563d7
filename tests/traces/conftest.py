"""A small world for live tests: project alpha with a network, group "web" and two ports on
host compute1 (through the actions, as users would), plus the personas."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sgweb import dispatch
from sgweb.live import compiled
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup
from tests.controlplane import factories
from tests.personas import *  # noqa: F403


@dataclass
class World:
    group: SecurityGroup
    ssh_rule_id: str
    ping_rule_id: str
    web: Port
    db: Port
    host: str = "compute1"


@pytest.fixture(autouse=True)
def no_dispatch(monkeypatch) -> list:
    sent: list = []
    monkeypatch.setattr(dispatch, "host_sender", lambda names, reason: None)
    monkeypatch.setattr(
        dispatch, "event_sender", lambda kind, payload, scope: sent.append((kind, payload, scope))
    )
    compiled.forget()
    return sent


@pytest.fixture
def world(alice, adam, project_a) -> World:
    from sgweb.security import actions as security_actions

    network, _subnet = factories.network_with_subnet(alice, project_a, cidr="192.0.2.0/24")
    group = factories.group(alice, project_a, "web")
    ssh = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="tcp", port_range_min=22,
        port_range_max=22, remote_ip_prefix="198.51.100.0/24",
    )  # fmt: skip
    ping = security_actions.create_security_group_rule(
        alice, group, direction="ingress", protocol="icmp", remote_ip_prefix="0.0.0.0/0"
    )
    web = factories.port(
        adam, project_a, network, name="web1", security_groups=[str(group.id)], host="compute1"
    )
    db = factories.port(
        adam, project_a, network, name="db1", security_groups=[str(group.id)], host="compute1"
    )
    return World(group, str(ssh.id), str(ping.id), web, db)
