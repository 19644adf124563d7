"""A host page for any name Neutron accepts, and its Decommission button (admins only)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from sgweb.audit.models import AuditEntry
from sgweb.networks import actions as network_actions
from sgweb.networks.models import Host, Port
from tests.dashboard.conftest import World

pytestmark = pytest.mark.django_db

ODD = "rack 7/ünï 节点"


def test_a_host_named_with_a_slash_has_its_page_and_the_admin_a_decommission_button(
    world: World, as_adam: Client, as_alice: Client
) -> None:
    Host.objects.create(name=ODD)
    url = reverse("dashboard:host", args=[ODD])
    page = as_adam.get(url).content.decode()
    assert "data-decommission" in page and "host.~rack%207%2F" in page
    assert "data-decommission" not in as_alice.get(url).content.decode()


def test_decommissioning_a_host_unbinds_its_ports_and_is_audited(
    world: World, as_adam: Client
) -> None:
    port = network_actions.create_port(
        world.people.adam, world.people.project_a, world.network_a, host=ODD
    )
    response = as_adam.post(reverse("dashboard:host_decommission", args=[ODD]), {"force": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:hosts")
    assert not Host.objects.filter(name=ODD).exists()
    assert Port.objects.get(pk=port.pk).host is None
    assert AuditEntry.objects.filter(object_type="host", object_repr=ODD).exists()


def test_a_member_cannot_decommission_a_host(world: World, as_alice: Client) -> None:
    response = as_alice.post(reverse("dashboard:host_decommission", args=[world.host.name]))
    assert response.status_code == 403
    assert Host.objects.filter(pk=world.host.pk).exists()


def test_a_host_with_bound_ports_is_not_decommissioned_without_force(
    world: World, as_adam: Client
) -> None:
    url = reverse("dashboard:host_decommission", args=[world.host.name])
    response = as_adam.post(url, follow=True)
    assert "bound port" in response.content.decode()
    assert Host.objects.filter(pk=world.host.pk).exists()
