"""The real `openstack network log ...` commands (python-neutronclient's OSC plugin) against a
live server: create, list, show, set --disable/--enable, delete, loggable resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from sgweb.networks.actions import create_network, create_port, create_subnet
from sgweb.packetlogs.models import Log
from sgweb.security.actions import create_security_group
from sgweb.tenancy.actions import create_api_token
from tests.controlplane.test_openstack_cli import OPENSTACK, Cli

pytestmark = pytest.mark.skipif(not Path(OPENSTACK).exists(), reason="openstack CLI not installed")


@pytest.fixture
def logged_vm(live_server, adam, alice, project_a) -> tuple[Cli, str, str]:
    network = create_network(alice, project_a, name="net")
    create_subnet(alice, network, cidr="192.0.2.0/24", name="net-v4")
    db = create_security_group(alice, project_a, name="db")
    vm = create_port(adam, project_a, network, name="db-1", host="compute1",
                     security_groups=[str(db.id)])  # fmt: skip
    _, key = create_api_token(alice, name="cli")
    return Cli(f"{live_server.url}/networking", key), str(db.id), str(vm.id)


def test_openstack_cli_manages_security_group_logs(logged_vm, dispatched) -> None:
    cli, db_id, vm_id = logged_vm
    types = cli.json("network", "loggable", "resources", "list")
    assert [row["Supported types"] for row in types] == ["security_group"]

    dispatched["hosts"].clear()
    created = cli.json(
        "network", "log", "create", "db-drops", "--resource-type", "security_group",
        "--event", "DROP", "--resource", db_id, "--target", vm_id,
    )  # fmt: skip
    assert (created["Event"], created["Target"], created["Resource"], created["Type"]) == (
        "DROP", vm_id, db_id, "security_group",
    )  # fmt: skip
    # The change reached the port's host.
    assert [hosts for hosts, _ in dispatched["hosts"]] == [["compute1"]]
    assert {row["ID"] for row in cli.json("network", "log", "list")} == {created["ID"]}
    cli.run("network", "log", "set", "db-drops", "--disable")
    assert cli.json("network", "log", "show", created["ID"])["Enabled"] is False
    cli.run("network", "log", "set", created["ID"], "--enable", "--description", "why")
    shown = cli.json("network", "log", "show", created["ID"])
    assert (shown["Enabled"], shown["Description"]) == (True, "why")
    cli.run("network", "log", "delete", "db-drops")
    assert not Log.objects.exists()
