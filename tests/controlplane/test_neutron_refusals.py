"""What Neutron refuses, we refuse, with its exception name and its words, and nothing changes."""

from __future__ import annotations

import pytest

from sgweb.audit.models import AuditEntry
from sgweb.networks.models import AllowedAddressPair, Port, PortSecurityGroup
from sgweb.security.models import SecurityGroup
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group, network_with_subnet, port


@pytest.fixture
def as_alice(alice):
    return NeutronClient(alice)


@pytest.fixture
def net(alice, project_a):
    network, _ = network_with_subnet(alice, project_a)
    return network


def _state() -> tuple[int, int, int, int]:
    return (
        Port.objects.count(),
        PortSecurityGroup.objects.count(),
        AllowedAddressPair.objects.count(),
        AuditEntry.objects.count(),
    )


def _message(response) -> str:
    return response.json()["NeutronError"]["message"]


def test_a_port_with_a_stateful_and_a_stateless_group_is_refused(as_alice, alice, project_a, net):
    stateful = group(alice, project_a, "stateful")
    stateless = as_alice.post(
        "/security-groups", {"security_group": {"name": "raw", "stateful": False}}
    ).json()["security_group"]
    before = _state()
    response = as_alice.post(
        "/ports",
        {
            "port": {
                "network_id": str(net.id),
                "security_groups": [str(stateful.id), stateless["id"]],
            }
        },
    )
    assert response.status_code == 409
    assert error_type(response) == "SecurityGroupConflict"
    assert _message(response) == (
        "Error Cannot apply both stateful and stateless security groups on the same port at "
        "the same time while attempting the operation."
    )
    assert _state() == before


def test_adding_a_stateless_group_to_a_port_with_a_stateful_one_is_refused(
    as_alice, alice, project_a, net
):
    stateful = group(alice, project_a, "stateful")
    raw = SecurityGroup.objects.get(
        id=as_alice.post(
            "/security-groups", {"security_group": {"name": "raw", "stateful": False}}
        ).json()["security_group"]["id"]
    )
    vm = port(alice, project_a, net, security_groups=[str(stateful.id)])
    before = _state()
    response = as_alice.put(
        f"/ports/{vm.id}", {"port": {"security_groups": [str(stateful.id), str(raw.id)]}}
    )
    assert (response.status_code, error_type(response)) == (409, "SecurityGroupConflict")
    assert _state() == before
    assert vm.ordered_security_group_ids() == [str(stateful.id)]


def test_a_port_may_use_several_stateless_groups(as_alice, net):
    ids = [
        as_alice.post(
            "/security-groups", {"security_group": {"name": name, "stateful": False}}
        ).json()["security_group"]["id"]
        for name in ("raw-a", "raw-b")
    ]
    response = as_alice.post(
        "/ports", {"port": {"network_id": str(net.id), "security_groups": ids}}
    )
    assert response.status_code == 201
    assert response.json()["port"]["security_groups"] == ids


def test_turning_port_security_off_while_groups_remain_is_refused(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net)
    before = _state()
    response = as_alice.put(f"/ports/{vm.id}", {"port": {"port_security_enabled": False}})
    assert response.status_code == 409
    assert error_type(response) == "PortSecurityPortHasSecurityGroup"
    assert _message(response) == (
        "Port has security group associated. Cannot disable port security or IP address "
        "until security group is removed."
    )
    assert _state() == before
    assert Port.objects.get(id=vm.id).port_security_enabled is True


def test_turning_port_security_off_while_address_pairs_remain_is_refused(
    as_alice, alice, project_a, net
):
    vm = port(alice, project_a, net, allowed_address_pairs=[{"ip_address": "192.0.2.200"}])
    before = _state()
    response = as_alice.put(
        f"/ports/{vm.id}", {"port": {"port_security_enabled": False, "security_groups": []}}
    )
    assert response.status_code == 409
    assert error_type(response) == "AddressPairAndPortSecurityRequired"
    assert _message(response) == (
        "Port Security must be enabled in order to have allowed address pairs on a port."
    )
    assert _state() == before


def test_a_new_port_without_port_security_cannot_name_groups(as_alice, alice, project_a, net):
    web = group(alice, project_a)
    before = _state()
    response = as_alice.post(
        "/ports",
        {
            "port": {
                "network_id": str(net.id),
                "port_security_enabled": False,
                "security_groups": [str(web.id)],
            }
        },
    )
    assert response.status_code == 400
    assert error_type(response) == "PortSecurityAndIPRequiredForSecurityGroups"
    assert _state() == before


def test_port_security_goes_off_together_with_the_groups_and_pairs(as_alice, alice, project_a, net):
    vm = port(alice, project_a, net, allowed_address_pairs=[{"ip_address": "192.0.2.200"}])
    response = as_alice.put(
        f"/ports/{vm.id}",
        {
            "port": {
                "port_security_enabled": False,
                "security_groups": [],
                "allowed_address_pairs": [],
            }
        },
    )
    assert response.status_code == 200
    body = response.json()["port"]
    assert (body["port_security_enabled"], body["security_groups"]) == (False, [])


def test_switching_stateful_on_a_group_that_ports_use_is_refused(as_alice, alice, project_a, net):
    web = group(alice, project_a)
    port(alice, project_a, net, security_groups=[str(web.id)])
    before = AuditEntry.objects.count()
    response = as_alice.put(f"/security-groups/{web.id}", {"security_group": {"stateful": False}})
    assert response.status_code == 409
    assert error_type(response) == "SecurityGroupInUse"
    assert _message(response) == f"Security Group {web.id} in use."
    assert SecurityGroup.objects.get(id=web.id).stateful is True
    assert AuditEntry.objects.count() == before


def test_switching_stateful_on_an_unused_group_is_allowed(as_alice, alice, project_a):
    web = group(alice, project_a)
    response = as_alice.put(f"/security-groups/{web.id}", {"security_group": {"stateful": False}})
    assert response.status_code == 200
    assert response.json()["security_group"]["stateful"] is False


def test_a_lone_minimum_port_is_refused_in_neutrons_words(as_alice, alice, project_a):
    web = group(alice, project_a)
    response = as_alice.post(
        "/security-group-rules",
        {
            "security_group_rule": {
                "security_group_id": str(web.id),
                "direction": "ingress",
                "protocol": "tcp",
                "port_range_min": 22,
            }
        },
    )
    assert response.status_code == 400
    assert error_type(response) == "SecurityGroupInvalidPortRange"
    assert _message(response) == "For TCP/UDP protocols, port_range_min must be <= port_range_max"


def test_an_ipv4_rule_for_icmpv6_is_refused_in_neutrons_words(as_alice, alice, project_a):
    web = group(alice, project_a)
    response = as_alice.post(
        "/security-group-rules",
        {
            "security_group_rule": {
                "security_group_id": str(web.id),
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "ipv6-icmp",
            }
        },
    )
    assert response.status_code == 400
    assert error_type(response) == "SecurityGroupEthertypeConflictWithProtocol"
    assert _message(response) == "Invalid ethertype IPv4 for protocol ipv6-icmp."
