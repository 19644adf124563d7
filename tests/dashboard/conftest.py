"""A small world for the dashboard tests, built through the action functions as users would."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from sgweb.networks import actions as network_actions
from sgweb.networks.models import Host, Network, Port
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup
from tests.personas import *  # noqa: F403
from tests.personas import Personas


@dataclass
class World:
    people: Personas
    network_a: Network
    web: SecurityGroup  # project A
    port_a: Port  # project A, bound to compute-1, uses web
    group_b: SecurityGroup  # project B
    port_b: Port  # project B
    host: Host


@pytest.fixture
def world(personas: Personas) -> World:
    adam, alice = personas.adam, personas.alice
    host = Host.objects.create(name="compute-1", status="in-sync")
    network_a = network_actions.create_network(alice, personas.project_a, name="web-net")
    network_actions.create_subnet(alice, network_a, cidr="192.0.2.0/24")
    web = security_actions.create_security_group(
        alice, personas.project_a, name="web", description="Web servers"
    )
    security_actions.create_security_group_rule(
        alice,
        web,
        direction="ingress",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix="203.0.113.0/24",
        description="SSH",
    )
    port_a = network_actions.create_port(
        adam,
        personas.project_a,
        network_a,
        name="web-1",
        host="compute-1",
        security_groups=[str(web.pk)],
    )
    network_b = network_actions.create_network(personas.charlie, personas.project_b, name="b-net")
    network_actions.create_subnet(personas.charlie, network_b, cidr="198.51.100.0/24")
    group_b = security_actions.create_security_group(
        personas.charlie, personas.project_b, name="secret"
    )
    port_b = network_actions.create_port(
        personas.charlie,
        personas.project_b,
        network_b,
        name="b-1",
        security_groups=[str(group_b.pk)],
    )
    return World(personas, network_a, web, port_a, group_b, port_b, host)


@pytest.fixture(autouse=True)
def heartbeats(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Agents' heartbeats as the pages see them: name -> Liveness. Empty means Redis could not
    be asked (the pages fall back to the database); tests fill it to make agents alive."""
    from sgweb.dashboard import hoststate

    beats: dict[str, object] = {}

    def fake(names):  # type: ignore[no-untyped-def]
        if not beats:
            return None
        from sgweb.hostsync.status import Liveness

        return {name: beats.get(name, Liveness(name, False)) for name in names}

    monkeypatch.setattr(hoststate, "liveness_for", fake)
    return beats


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    # Hashing the personas' passwords the slow, safe way would dominate the suite's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(world: World) -> Client:
    return client_for(world.people.alice)


@pytest.fixture
def as_charlie(world: World) -> Client:
    return client_for(world.people.charlie)


@pytest.fixture
def as_rita(world: World) -> Client:
    return client_for(world.people.rita)


@pytest.fixture
def as_adam(world: World) -> Client:
    return client_for(world.people.adam)
