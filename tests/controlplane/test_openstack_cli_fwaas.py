"""The real `openstack router ...` and `openstack firewall group ...` commands (python-
openstackclient's network and FWaaS v2 commands) against a live server."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgweb.fwaas.models import FirewallPolicy, FirewallRule
from sgweb.networks.actions import create_host, create_network, create_subnet
from sgweb.networks.models import Port
from sgweb.routers.models import Router
from sgweb.tenancy.actions import create_api_token
from tests.controlplane.test_openstack_cli import OPENSTACK, Cli

pytestmark = pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="openstack CLI not installed")


@pytest.fixture
def two_networks(live_server, adam, alice, project_a) -> Cli:
    create_host(adam, name="network1", network_node=True)
    for name, cidr in (("net-web", "192.0.2.0/24"), ("net-app", "198.51.100.0/24")):
        network = create_network(alice, project_a, name=name)
        create_subnet(alice, network, cidr=cidr, name=f"{name}-v4")
    _, key = create_api_token(alice, name="cli")
    return Cli(f"{live_server.url}/networking", key)


def test_openstack_cli_creates_a_router_between_two_subnets_and_removes_it(
    two_networks: Cli, dispatched
):
    cli = two_networks
    router = cli.json("router", "create", "r1")
    assert (router["name"], router["status"]) == ("r1", "PENDING")  # the node is not up yet
    assert Router.objects.get(name="r1").host.name == "network1"
    cli.run("router", "add", "subnet", "r1", "net-web-v4")
    cli.run("router", "add", "subnet", "r1", "net-app-v4")
    ports = Port.objects.filter(device_id=router["id"]).order_by("network__name")
    assert [p.device_owner for p in ports] == ["network:router_interface"] * 2
    assert sorted(p.fixed_ips.get().ip_address for p in ports) == ["192.0.2.1", "198.51.100.1"]
    cli.run("router", "set", "r1", "--description", "web to app")
    shown = cli.json("router", "show", "r1")
    assert (shown["id"], shown["description"]) == (router["id"], "web to app")
    assert [r["Name"] for r in cli.json("router", "list")] == ["r1"]
    # Every change reached the router's network node.
    assert {tuple(hosts) for hosts, _ in dispatched["network_nodes"]} == {("network1",)}

    refusal = cli.refused("router", "delete", "r1")
    assert "still has ports" in refusal
    cli.run("router", "remove", "subnet", "r1", "net-web-v4")
    cli.run("router", "remove", "subnet", "r1", "net-app-v4")
    assert not Port.objects.filter(device_id=router["id"]).exists()
    cli.run("router", "delete", "r1")
    assert not Router.objects.exists()


def test_openstack_cli_manages_firewall_rules_policies_and_groups(two_networks: Cli):
    cli = two_networks
    cli.json("router", "create", "r1")
    cli.run("router", "add", "subnet", "r1", "net-app-v4")
    interface = Port.objects.get(device_owner="network:router_interface")

    ssh = cli.json(
        "firewall", "group", "rule", "create", "--name", "allow-ssh", "--protocol", "tcp",
        "--destination-port", "22", "--destination-ip-address", "198.51.100.0/24",
        "--action", "allow",
    )  # fmt: skip
    assert (ssh["Protocol"], ssh["Destination Port"], ssh["Action"]) == ("tcp", "22", "allow")
    deny_db = cli.json(
        "firewall", "group", "rule", "create", "--name", "deny-db", "--protocol", "tcp",
        "--destination-port", "5432:5433", "--action", "deny",
    )  # fmt: skip
    ping = cli.json(
        "firewall", "group", "rule", "create", "--name", "reject-ping", "--protocol", "icmp",
        "--action", "reject",
    )  # fmt: skip
    rules = {r["Name"] for r in cli.json("firewall", "group", "rule", "list")}
    assert rules == {"allow-ssh", "deny-db", "reject-ping"}
    cli.run("firewall", "group", "rule", "set", "deny-db", "--destination-port", "5432")
    assert cli.json("firewall", "group", "rule", "show", "deny-db")["Destination Port"] == "5432"

    policy = cli.json(
        "firewall", "group", "policy", "create", "prod-egress",
        "--firewall-rule", "allow-ssh", "--firewall-rule", "deny-db",
    )  # fmt: skip
    assert policy["Firewall Rules"] == [ssh["ID"], deny_db["ID"]]
    cli.run("firewall", "group", "policy", "set", "prod-egress", "--audited")
    assert FirewallPolicy.objects.get(name="prod-egress").audited is True
    cli.run(
        "firewall", "group", "policy", "add", "rule", "prod-egress", "reject-ping",
        "--insert-after", "allow-ssh",
    )  # fmt: skip
    shown = cli.json("firewall", "group", "policy", "show", "prod-egress")
    assert shown["Firewall Rules"] == [ssh["ID"], ping["ID"], deny_db["ID"]]
    assert shown["Audited"] is False  # a change clears the audit
    cli.run("firewall", "group", "policy", "remove", "rule", "prod-egress", "allow-ssh")
    shown = cli.json("firewall", "group", "policy", "show", "prod-egress")
    assert shown["Firewall Rules"] == [ping["ID"], deny_db["ID"]]
    refusal = cli.refused("firewall", "group", "rule", "delete", "deny-db")
    assert "is being used" in refusal

    group = cli.json(
        "firewall", "group", "create", "--name", "app-edge", "--egress-firewall-policy",
        "prod-egress", "--port", str(interface.id),
    )  # fmt: skip
    assert group["Ports"] == [str(interface.id)]
    assert group["Status"] == "PENDING"
    assert [g["Name"] for g in cli.json("firewall", "group", "list")] == ["app-edge"]
    cli.run("firewall", "group", "unset", "app-edge", "--port", str(interface.id))
    assert cli.json("firewall", "group", "show", "app-edge")["Status"] == "INACTIVE"
    cli.run("firewall", "group", "set", "app-edge", "--ingress-firewall-policy", "prod-egress")
    shown = cli.json("firewall", "group", "show", "app-edge")
    assert shown["Ingress Policy ID"] == policy["ID"]

    cli.run("firewall", "group", "delete", "app-edge")
    cli.run("firewall", "group", "policy", "delete", "prod-egress")
    cli.run("firewall", "group", "rule", "delete", "deny-db")
    assert set(FirewallRule.objects.values_list("name", flat=True)) == {"allow-ssh", "reject-ping"}


def test_openstack_cli_shows_firewall_rule_refusals(two_networks: Cli):
    cli = two_networks
    icmp_port = cli.refused(
        "firewall", "group", "rule", "create", "--protocol", "icmp", "--destination-port", "22"
    )
    assert "not allowed when protocol is set to ICMP" in icmp_port
    wrong_family = cli.refused(
        "firewall", "group", "rule", "create", "--ip-version", "6",
        "--source-ip-address", "192.0.2.0/24",
    )  # fmt: skip
    assert "do not agree with IP Version" in wrong_family
    backwards = cli.refused(
        "firewall", "group", "rule", "create", "--protocol", "udp", "--source-port", "90:80"
    )
    assert "must not exceed" in backwards
    assert not FirewallRule.objects.exists()
