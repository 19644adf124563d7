"""Networks and subnets are edited and deleted from their pages, through the actions."""

from __future__ import annotations

import pytest
from django.test import Client

from sgweb.networks import actions as network_actions
from sgweb.networks.models import Network, Subnet
from tests.dashboard.conftest import World

pytestmark = pytest.mark.django_db


def test_a_member_renames_a_network_from_its_page(world: World, as_alice: Client) -> None:
    url = f"/networks/{world.network_a.pk}"
    assert 'id="edit-network"' in as_alice.get(url).content.decode()
    response = as_alice.post(f"{url}/edit", {"name": "front", "description": "The web tier"})
    assert response.status_code == 302
    world.network_a.refresh_from_db()
    assert (world.network_a.name, world.network_a.description) == ("front", "The web tier")


def test_a_network_with_ports_is_not_deleted_and_the_page_says_why(
    world: World, as_alice: Client
) -> None:
    response = as_alice.post(f"/networks/{world.network_a.pk}/delete", follow=True)
    assert "still on this network" in response.content.decode()
    assert Network.objects.filter(pk=world.network_a.pk).exists()


def test_an_empty_network_is_deleted(world: World, as_alice: Client) -> None:
    spare = network_actions.create_network(world.people.alice, world.people.project_a, name="x")
    response = as_alice.post(f"/networks/{spare.pk}/delete")
    assert response.status_code == 302 and response["Location"] == "/networks"
    assert not Network.objects.filter(pk=spare.pk).exists()


def test_a_subnet_gets_new_dhcp_servers_and_a_bad_one_is_refused_next_to_the_field(
    world: World, as_alice: Client
) -> None:
    subnet = world.network_a.subnets.get()
    url = f"/networks/{world.network_a.pk}/subnets/{subnet.pk}/edit"
    fields = {"name": "v4", "gateway_ip": "192.0.2.1", "enable_dhcp": "on"}
    response = as_alice.post(url, {**fields, "dhcp_servers": "192.0.2.250, 192.0.2.251"})
    assert response.status_code == 302
    subnet.refresh_from_db()
    assert subnet.dhcp_servers == ["192.0.2.250", "192.0.2.251"] and subnet.name == "v4"
    refused = as_alice.post(
        url, {**fields, "dhcp_servers": "198.51.100.9"}, HTTP_X_REQUESTED_WITH="fetch"
    )
    assert refused.status_code == 400 and "dhcp_servers" in refused.json()["errors"]
    subnet.refresh_from_db()
    assert subnet.dhcp_servers == ["192.0.2.250", "192.0.2.251"]


def test_a_subnet_without_addresses_in_use_is_deleted(world: World, as_alice: Client) -> None:
    extra = network_actions.create_subnet(
        world.people.alice, world.network_a, cidr="2001:db8:5::/64"
    )
    response = as_alice.post(f"/networks/{world.network_a.pk}/subnets/{extra.pk}/delete")
    assert response.status_code == 302
    assert not Subnet.objects.filter(pk=extra.pk).exists()


def test_a_reader_sees_no_edit_controls(world: World, as_rita: Client) -> None:
    page = as_rita.get(f"/networks/{world.network_a.pk}").content.decode()
    assert 'id="edit-network"' not in page and "subnet-edit" not in page
    assert as_rita.post(f"/networks/{world.network_a.pk}/edit", {"name": "x"}).status_code == 403
