"""The real `openstack` command line against a live server (python-openstackclient with
admin_token auth: the token goes straight to X-Auth-Token, the endpoint is ours)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sgweb.kernel.runner import SubprocessRunner
from sgweb.networks.actions import create_network, create_subnet
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.actions import create_api_token

OPENSTACK = shutil.which("openstack") or str(
    Path(__file__).resolve().parents[2] / ".venv/bin/openstack"
)

pytestmark = pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="openstack CLI not installed")


class Cli:
    def __init__(self, endpoint: str, token: str) -> None:
        self.base = [
            OPENSTACK,
            "--os-auth-type", "admin_token",
            "--os-endpoint", endpoint,
            f"--os-token={token}",
        ]  # fmt: skip
        self.runner = SubprocessRunner()

    def run(self, *args: str) -> str:
        result = self.runner.run([*self.base, *args], check=False, timeout=60)
        assert result.returncode == 0, f"openstack {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def json(self, *args: str):
        return json.loads(self.run(*args, "-f", "json"))

    def refused(self, *args: str) -> str:
        """The error the client prints for a request the API refuses."""
        result = self.runner.run([*self.base, *args], check=False, timeout=60)
        assert result.returncode != 0, f"openstack {' '.join(args)} was accepted"
        return result.stderr


@pytest.fixture
def cli(live_server, alice, project_a) -> Cli:
    network = create_network(alice, project_a, name="net")
    create_subnet(alice, network, cidr="192.0.2.0/24", name="net-v4")
    _, key = create_api_token(alice, name="cli")
    return Cli(f"{live_server.url}/networking", key)


def test_openstack_cli_manages_groups_rules_and_ports(cli: Cli, project_a):
    # security group create/list/show/set
    web = cli.json("security", "group", "create", "web", "--description", "web tier")
    assert web["name"] == "web"
    listed = {g["Name"] for g in cli.json("security", "group", "list")}
    assert listed == {"default", "web"}
    cli.run("security", "group", "set", "web", "--name", "frontend", "--description", "front")
    shown = cli.json("security", "group", "show", web["id"])
    assert (shown["name"], shown["description"]) == ("frontend", "front")
    assert shown["revision_number"] == 1

    # security group rule create (CIDR and remote group)/list/show/delete
    ssh = cli.json(
        "security", "group", "rule", "create", "frontend",
        "--protocol", "tcp", "--dst-port", "22", "--remote-ip", "192.0.2.77/24",
    )  # fmt: skip
    assert (ssh["port_range_min"], ssh["port_range_max"]) == (22, 22)
    assert ssh["normalized_cidr"] == "192.0.2.0/24"
    http = cli.json(
        "security", "group", "rule", "create", "frontend",
        "--ingress", "--protocol", "tcp", "--dst-port", "80:81", "--remote-group", "default",
    )  # fmt: skip
    default_id = SecurityGroup.objects.get(project=project_a, name="default").id
    assert http["remote_group_id"] == str(default_id)
    rules = cli.json("security", "group", "rule", "list", "frontend")
    assert {r["ID"] for r in rules} >= {ssh["id"], http["id"]}
    assert cli.json("security", "group", "rule", "show", ssh["id"])["protocol"] == "tcp"
    cli.run("security", "group", "rule", "delete", http["id"])
    assert not SecurityGroupRule.objects.filter(id=http["id"]).exists()

    # port create/list/show/set/unset with groups and port security
    port = cli.json("port", "create", "vm1", "--network", "net", "--security-group", "frontend")
    assert port["security_group_ids"] == [web["id"]]
    assert port["mac_address"].startswith("fa:16:3e:")
    assert port["fixed_ips"][0]["ip_address"] == "192.0.2.3"
    bare = cli.json(
        "port", "create", "vm2", "--network", "net",
        "--no-security-group", "--disable-port-security",
    )  # fmt: skip
    assert bare["port_security_enabled"] is False
    assert bare["security_group_ids"] == []
    assert {p["Name"] for p in cli.json("port", "list")} == {"vm1", "vm2"}
    cli.run("port", "set", "vm1", "--security-group", "default")
    assert cli.json("port", "show", "vm1")["security_group_ids"] == [web["id"], str(default_id)]
    cli.run("port", "unset", "vm1", "--security-group", "frontend")
    assert cli.json("port", "show", "vm1")["security_group_ids"] == [str(default_id)]
    cli.run("port", "set", "vm1", "--no-security-group", "--disable-port-security")
    vm1 = Port.objects.get(name="vm1")
    assert vm1.port_security_enabled is False
    assert list(vm1.security_groups.all()) == []

    # the group is free again and can go
    cli.run("security", "group", "delete", web["id"])
    assert {g["Name"] for g in cli.json("security", "group", "list")} == {"default"}


def test_openstack_cli_tags_groups_ports_and_networks_and_filters_on_them(cli: Cli):
    web = cli.json("security", "group", "create", "web", "--tag", "prod")
    assert web["tags"] == ["prod"]
    cli.json("security", "group", "create", "db")
    cli.run("security", "group", "set", "web", "--tag", "blue")
    assert cli.json("security", "group", "show", "web")["tags"] == ["blue", "prod"]
    listed = cli.json("security", "group", "list", "--tags", "prod,blue")
    assert [g["Name"] for g in listed] == ["web"]
    not_prod = cli.json("security", "group", "list", "--not-tags", "prod")
    assert {g["Name"] for g in not_prod} == {"default", "db"}
    cli.run("security", "group", "unset", "web", "--tag", "prod")
    assert cli.json("security", "group", "show", "web")["tags"] == ["blue"]
    cli.run("security", "group", "set", "web", "--no-tag")
    assert cli.json("security", "group", "show", "web")["tags"] == []

    cli.run("network", "set", "net", "--tag", "lab")
    assert [n["Name"] for n in cli.json("network", "list", "--tags", "lab")] == ["net"]
    cli.json("port", "create", "vm1", "--network", "net", "--tag", "frontend")
    cli.json("port", "create", "vm2", "--network", "net")
    assert [p["Name"] for p in cli.json("port", "list", "--any-tags", "frontend,x")] == ["vm1"]
    assert cli.json("port", "show", "vm1")["tags"] == ["frontend"]


def test_openstack_cli_shows_neutrons_refusals(cli: Cli):
    cli.json("security", "group", "create", "web")
    cli.json("security", "group", "create", "raw", "--stateless")
    mixed = cli.refused(
        "port", "create", "vm1", "--network", "net",
        "--security-group", "web", "--security-group", "raw",
    )  # fmt: skip
    assert "Cannot apply both stateful and stateless security groups" in mixed

    cli.json("port", "create", "vm1", "--network", "net", "--security-group", "web")
    assert "Port has security group associated" in cli.refused(
        "port", "set", "vm1", "--disable-port-security"
    )
    in_use = cli.refused("security", "group", "set", "web", "--stateless")
    assert "Security Group" in in_use and "in use" in in_use
    assert "Invalid ethertype IPv4 for protocol ipv6-icmp" in cli.refused(
        "security", "group", "rule", "create", "web", "--ethertype", "IPv4",
        "--protocol", "ipv6-icmp",
    )  # fmt: skip
    # The group no port uses can still switch.
    cli.run("security", "group", "set", "raw", "--stateful")
    assert cli.json("security", "group", "show", "raw")["stateful"] is True
    port = cli.json("port", "show", "vm1")
    assert port["status"] == "DOWN"  # bound to no host: no agent carries it


def test_openstack_cli_filters_groups_on_sharing_and_ports_on_their_status(cli: Cli):
    cli.json("security", "group", "create", "web")
    # No group is shared (there is no RBAC for groups): --share lists none, --no-share all.
    assert cli.json("security", "group", "list", "--share") == []
    assert {g["Name"] for g in cli.json("security", "group", "list", "--no-share")} == {
        "default",
        "web",
    }
    cli.json("port", "create", "vm1", "--network", "net")
    # Bound to no host, so no agent reports it: DOWN, and listed as such.
    assert cli.json("port", "show", "vm1")["status"] == "DOWN"
    assert [p["Name"] for p in cli.json("port", "list", "--status", "DOWN")] == ["vm1"]
    assert cli.json("port", "list", "--status", "ACTIVE") == []
