"""The Neutron logging API v2.0: logs of security groups and ports, their tenancy, and the
NFLOG-carrying desired state of the hosts they cover."""

from __future__ import annotations

import pytest

from sgweb.audit.models import AuditEntry
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.render import render_iptables
from sgweb.hostsync.desired_state import host_state
from sgweb.packetlogs.models import Log
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group, network_with_subnet, port


@pytest.fixture
def web_vm(adam, alice, project_a):
    web = group(alice, project_a)
    network, _ = network_with_subnet(alice, project_a)
    vm = port(adam, project_a, network, host="compute1", security_groups=[str(web.id)])
    return web, vm


def _events(port_id) -> str | None:
    return {p.id: p.log_events for p in host_state("compute1").ports}[str(port_id)]


def test_a_member_creates_lists_shows_disables_and_deletes_a_log(alice, web_vm):
    web, vm = web_vm
    api = NeutronClient(alice)
    aliases = {item["alias"] for item in api.get("/extensions").json()["extensions"]}
    assert "logging" in aliases
    assert api.get("/log/loggable-resources").json() == {
        "loggable_resources": [{"type": "security_group"}]
    }
    created = api.post(
        "/log/logs",
        {"log": {"name": "db-drops", "resource_type": "security_group", "event": "DROP",
                 "resource_id": str(web.id)}},
    )  # fmt: skip
    assert created.status_code == 201, created.content
    log = created.json()["log"]
    assert (log["event"], log["enabled"], log["resource_id"], log["target_id"]) == (
        "DROP", True, str(web.id), None,
    )  # fmt: skip
    assert [item["id"] for item in api.get("/log/logs").json()["logs"]] == [log["id"]]
    assert api.get(f"/log/logs/{log['id']}").json()["log"]["name"] == "db-drops"
    assert _events(vm.id) == "DROP"

    updated = api.put(f"/log/logs/{log['id']}", {"log": {"enabled": False}})
    assert updated.json()["log"]["enabled"] is False
    assert _events(vm.id) is None
    assert api.delete(f"/log/logs/{log['id']}").status_code == 204
    assert not Log.objects.exists()
    actions = list(AuditEntry.objects.filter(object_type="log").values_list("action", flat=True))
    assert sorted(actions) == ["create", "delete", "update"]


def test_every_change_of_a_log_publishes_the_hosts_of_the_ports_it_covers(
    alice, web_vm, dispatched, django_capture_on_commit_callbacks
):
    web, _ = web_vm
    api = NeutronClient(alice)
    dispatched["hosts"].clear()
    with django_capture_on_commit_callbacks(execute=True):
        body = {"resource_type": "security_group", "resource_id": str(web.id)}
        log_id = api.post("/log/logs", {"log": body}).json()["log"]["id"]
        api.put(f"/log/logs/{log_id}", {"log": {"name": "renamed"}})  # no firewall change
        api.put(f"/log/logs/{log_id}", {"log": {"enabled": False}})
        api.delete(f"/log/logs/{log_id}")  # disabled: nothing left to remove
    assert [hosts for hosts, _ in dispatched["hosts"]] == [["compute1"], ["compute1"]]


def test_a_port_target_and_a_group_log_add_up_to_all_events(alice, web_vm):
    web, vm = web_vm
    api = NeutronClient(alice)
    for body in (
        {"resource_type": "security_group", "event": "ACCEPT", "target_id": str(vm.id)},
        {"resource_type": "security_group", "event": "DROP", "resource_id": str(web.id)},
    ):
        assert api.post("/log/logs", {"log": body}).status_code == 201
    assert _events(vm.id) == "ALL"
    text = render_iptables(compile_host(host_state("compute1")), 4)
    assert f'--nflog-prefix "DROP ingress {vm.id}" --nflog-group 10' in text
    assert f'--nflog-prefix "ACCEPT egress {vm.id}"' in text


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resource_type": "port", "event": "ALL"}, 400),
        ({"resource_type": "security_group", "event": "SOME"}, 400),
        ({"resource_type": "security_group", "enabled": "perhaps"}, 400),
        ({"resource_type": "security_group", "colour": "red"}, 400),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(alice, web_vm, body, status):
    response = NeutronClient(alice).post("/log/logs", {"log": body})
    assert response.status_code == status, response.content
    assert not Log.objects.exists()


def test_a_target_outside_the_named_group_is_refused(alice, adam, project_a, web_vm):
    _, vm = web_vm
    other = group(alice, project_a, name="other")
    response = NeutronClient(alice).post(
        "/log/logs",
        {"log": {"resource_type": "security_group", "resource_id": str(other.id),
                 "target_id": str(vm.id)}},
    )  # fmt: skip
    assert response.status_code == 400
    assert "target_id" in response.content.decode()


def test_an_admin_without_a_project_logs_a_port_or_group_into_its_owners_project(
    adam, project_a, project_b, web_vm
):
    web, vm = web_vm
    api = NeutronClient(adam)

    def create(**fields):
        return api.post("/log/logs", {"log": {"resource_type": "security_group", **fields}})

    by_port = create(target_id=str(vm.id), event="DROP")
    assert by_port.status_code == 201, by_port.content
    assert by_port.json()["log"]["project_id"] == project_a.id.hex
    by_group = create(resource_id=str(web.id))
    assert by_group.status_code == 201, by_group.content
    assert by_group.json()["log"]["project_id"] == project_a.id.hex
    assert _events(vm.id) == "ALL"
    # Named, the project still decides (and a port of another project is refused).
    named = create(target_id=str(vm.id), project_id=project_b.id.hex)
    assert named.status_code == 400 and "target_id" in named.content.decode()
    # Neither port nor group: nothing to take a project from.
    nothing = create()
    assert nothing.status_code == 400 and "project_id" in nothing.content.decode()
    assert Log.objects.filter(project=project_a).count() == Log.objects.count() == 2


def test_an_outsider_neither_sees_nor_logs_another_projects_groups(alice, charlie, web_vm):
    web, vm = web_vm
    created = NeutronClient(alice).post(
        "/log/logs", {"log": {"resource_type": "security_group", "target_id": str(vm.id)}}
    )
    log_id = created.json()["log"]["id"]
    outsider = NeutronClient(charlie)
    assert outsider.get("/log/logs").json()["logs"] == []
    assert outsider.get(f"/log/logs/{log_id}").status_code == 404
    assert outsider.put(f"/log/logs/{log_id}", {"log": {"enabled": False}}).status_code == 404
    assert outsider.delete(f"/log/logs/{log_id}").status_code == 404
    stolen = outsider.post(
        "/log/logs", {"log": {"resource_type": "security_group", "resource_id": str(web.id)}}
    )
    assert stolen.status_code == 404
    assert error_type(stolen) == "SecurityGroupNotFound"
    assert Log.objects.count() == 1


def test_a_reader_may_look_but_not_log(rita, alice, web_vm):
    response = NeutronClient(rita).post("/log/logs", {"log": {"resource_type": "security_group"}})
    assert response.status_code in (400, 403, 404)
    assert not Log.objects.exists()
