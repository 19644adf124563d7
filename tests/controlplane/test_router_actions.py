"""Routers: scheduling on a network node, interfaces on subnets' gateways, tenancy, quotas,
refusals that change nothing, and the network node told of every change."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sgweb.audit.models import AuditEntry
from sgweb.networks import actions as network_actions
from sgweb.networks.actions import create_host
from sgweb.networks.models import FixedIP, Port
from sgweb.routers import actions
from sgweb.routers.models import Router, RouterInterface
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, OverQuota, PermissionDenied
from tests.controlplane.factories import network_with_subnet
from tests.controlplane.fwaas_factories import routed_pair


def state() -> tuple[int, ...]:
    return (
        Router.objects.count(),
        RouterInterface.objects.count(),
        Port.objects.count(),
        FixedIP.objects.count(),
        AuditEntry.objects.count(),
    )


def test_a_router_runs_on_the_least_busy_network_node_and_never_on_a_compute_host(
    adam, alice, project_a
):
    create_host(adam, name="compute1")
    assert actions.create_router(alice, project_a, name="lonely").host is None
    create_host(adam, name="network2", network_node=True)
    create_host(adam, name="network1", network_node=True)
    first = actions.create_router(alice, project_a, name="r1")
    second = actions.create_router(alice, project_a, name="r2")
    assert {first.host.name, second.host.name} == {"network1", "network2"}
    assert first.status == "PENDING"  # no agent has reported from the node yet


def test_an_interface_holds_the_subnets_gateway_and_belongs_to_the_router(
    adam, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        pair = routed_pair(adam, alice, project_a)
    assert pair.web_port.fixed_ips.get().ip_address == "192.0.2.1"
    assert pair.app_port.fixed_ips.get().ip_address == "198.51.100.1"
    assert pair.web_port.device_owner == "network:router_interface"
    assert pair.web_port.device_id == str(pair.router.id)
    assert pair.web_port.port_security_enabled is False
    pair.router.refresh_from_db()
    assert pair.router.revision_number == 2
    assert {tuple(hosts) for hosts, _ in dispatched["network_nodes"]} == {("network1",)}
    assert len(dispatched["network_nodes"]) == 3  # created, two interfaces


def test_a_second_interface_on_the_same_subnet_or_an_overlapping_one_is_refused(
    adam, alice, project_a
):
    pair = routed_pair(adam, alice, project_a)
    _, overlapping = network_with_subnet(alice, project_a, "192.0.2.0/25", "net-other")
    before = state()
    with pytest.raises(Invalid, match="already has a port"):
        actions.add_interface(alice, pair.router, pair.web_subnet)
    with pytest.raises(Invalid, match="overlaps"):
        actions.add_interface(alice, pair.router, overlapping)
    other = actions.create_router(alice, project_a, name="r2")
    before = state()
    with pytest.raises(Conflict, match="already allocated"):
        actions.add_interface(alice, other, pair.web_subnet)  # r1 holds the gateway
    assert state() == before


def test_a_subnet_without_gateway_cannot_get_an_interface(alice, project_a):
    network = network_actions.create_network(alice, project_a, name="isolated")
    subnet = network_actions.create_subnet(alice, network, cidr="203.0.113.0/24", gateway_ip=None)
    router = actions.create_router(alice, project_a, name="r1")
    with pytest.raises(Invalid, match="gateway IP"):
        actions.add_interface(alice, router, subnet)


def test_outsiders_and_readers_cannot_touch_a_router_and_another_projects_subnet_is_not_found(
    adam, alice, charlie, rita, project_a, project_b
):
    pair = routed_pair(adam, alice, project_a)
    _, bravo_subnet = network_with_subnet(charlie, project_b, "203.0.113.0/24", "bravo")
    before = state()
    with pytest.raises(NotFound):
        actions.update_router(charlie, pair.router, name="mine")
    with pytest.raises(PermissionDenied):
        actions.delete_router(rita, pair.router)
    with pytest.raises(NotFound):
        actions.add_interface(alice, pair.router, bravo_subnet)
    assert state() == before


def test_a_router_with_interfaces_cannot_be_deleted_nor_its_ports_directly(adam, alice, project_a):
    pair = routed_pair(adam, alice, project_a)
    before = state()
    with pytest.raises(Conflict, match="still has ports"):
        actions.delete_router(alice, pair.router)
    with pytest.raises(Conflict, match="cannot be deleted directly"):
        network_actions.delete_port(alice, pair.web_port)
    with pytest.raises(Conflict):
        network_actions.delete_subnet(alice, pair.web_subnet)  # the router holds an address
    assert state() == before


def test_removing_interfaces_frees_the_gateway_and_then_the_router_goes(
    adam, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    pair = routed_pair(adam, alice, project_a)
    answer = actions.remove_interface(alice, pair.router, subnet=pair.web_subnet)
    assert answer["port_id"] == str(pair.web_port.id)
    assert answer["subnet_id"] == str(pair.web_subnet.id)
    with pytest.raises(NotFound):
        actions.remove_interface(alice, pair.router, subnet=pair.web_subnet)
    actions.remove_interface(alice, pair.router, port=pair.app_port)
    assert not Port.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        actions.delete_router(alice, pair.router)
    assert not Router.objects.exists()
    assert [hosts for hosts, _ in dispatched["network_nodes"]] == [["network1"]]


@override_settings(QUOTA_ROUTERS=1)
def test_the_router_quota_is_kept(alice, project_a):
    actions.create_router(alice, project_a, name="r1")
    with pytest.raises(OverQuota):
        actions.create_router(alice, project_a, name="r2")
    assert Router.objects.count() == 1


def test_a_bad_name_is_refused_naming_the_field(alice, project_a):
    with pytest.raises(Invalid) as refusal:
        actions.create_router(alice, project_a, name="x" * 256)
    assert "name" in refusal.value.errors
    assert not Router.objects.exists()


def test_only_admins_place_a_router_and_only_on_a_network_node(adam, alice, project_a):
    compute = create_host(adam, name="compute1")
    node = create_host(adam, name="network9", network_node=True)
    with pytest.raises(Invalid):
        actions.create_router(adam, project_a, host=compute)
    with pytest.raises(PermissionDenied):
        actions.create_router(alice, project_a, host=node)
    assert actions.create_router(adam, project_a, host=node).host == node


def test_a_routers_port_keeps_its_address_and_owner_and_no_port_claims_to_be_one(
    adam, alice, project_a
):
    pair = routed_pair(adam, alice, project_a)
    before = state()
    with pytest.raises(Conflict, match="belongs to router"):
        network_actions.update_port(alice, pair.web_port, device_owner="compute:nova")
    with pytest.raises(Conflict, match="belongs to router"):
        network_actions.update_port(alice, pair.web_port, fixed_ips=[{"ip_address": "192.0.2.9"}])
    with pytest.raises(Invalid):
        network_actions.create_port(
            alice, project_a, pair.web, device_owner="network:router_interface"
        )
    assert state() == before
    renamed = network_actions.update_port(alice, pair.web_port, name="gateway")
    assert renamed.name == "gateway"
