"""The API side of issue 10: one publish per bulk request, retries answered, hosts managed."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from sgweb.audit.models import AuditEntry
from sgweb.networks.models import Host, Port
from sgweb.security.models import SecurityGroupRule
from tests.agents.conftest import sync_channel  # noqa: F401  (a Redis key space of its own)
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group, network_with_subnet, port

pytestmark = pytest.mark.django_db

ODD_HOST = "rack 7/ünï 节点"


@pytest.fixture
def as_alice(alice):
    return NeutronClient(alice)


@pytest.fixture
def as_adam(adam):
    return NeutronClient(adam)


def _rule_body(group_id: str, port_number: int) -> dict:
    return {"security_group_id": group_id, "direction": "ingress", "protocol": "tcp",
            "port_range_min": port_number, "port_range_max": port_number}  # fmt: skip


def test_a_bulk_create_of_many_rules_publishes_each_host_once(
    as_alice, alice, adam, project_a, dispatched, django_capture_on_commit_callbacks
):
    web = group(alice, project_a)
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, security_groups=[str(web.id)], host="compute1")
    bodies = [_rule_body(str(web.id), 1000 + n) for n in range(40)]
    dispatched["hosts"].clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post("/security-group-rules", {"security_group_rules": bodies})
    assert response.status_code == 201
    assert len(response.json()["security_group_rules"]) == 40
    assert [hosts for hosts, _ in dispatched["hosts"]] == [["compute1"]]
    assert "and 39 more changes" in dispatched["hosts"][0][1]


def test_a_retried_create_with_the_same_idempotency_key_is_answered_not_refused(
    as_alice, alice, project_a
):
    web = group(alice, project_a)
    body = {"security_group_rule": _rule_body(str(web.id), 443)}
    headers = {"HTTP_X_AUTH_TOKEN": as_alice.key, "HTTP_IDEMPOTENCY_KEY": "create-443"}
    send = lambda: as_alice.client.post(  # noqa: E731
        "/networking/v2.0/security-group-rules", json.dumps(body),
        content_type="application/json", **headers,
    )  # fmt: skip
    first, retry = send(), send()
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert SecurityGroupRule.objects.filter(port_range_min=443).count() == 1
    # Without the key the same request is a duplicate, as Neutron says.
    duplicate = as_alice.post("/security-group-rules", body)
    assert duplicate.status_code == 409


def test_a_retried_delete_with_its_key_is_answered_204(as_alice, alice, project_a):
    web = group(alice, project_a)
    path = f"/networking/v2.0/security-groups/{web.id}"
    headers = {"HTTP_X_AUTH_TOKEN": as_alice.key, "HTTP_IDEMPOTENCY_KEY": "drop-web"}
    assert as_alice.client.delete(path, **headers).status_code == 204
    assert as_alice.client.delete(path, **headers).status_code == 204
    assert as_alice.client.delete(path, HTTP_X_AUTH_TOKEN=as_alice.key).status_code == 404


def test_a_key_reused_for_another_request_is_refused_and_changes_nothing(
    as_alice, alice, project_a
):
    web = group(alice, project_a)
    headers = {"HTTP_X_AUTH_TOKEN": as_alice.key, "HTTP_IDEMPOTENCY_KEY": "k1"}

    def send(port_number: int):
        body = {"security_group_rule": _rule_body(str(web.id), port_number)}
        return as_alice.client.post(
            "/networking/v2.0/security-group-rules", json.dumps(body),
            content_type="application/json", **headers,
        )  # fmt: skip

    assert send(80).status_code == 201
    refused = send(81)
    assert refused.status_code == 400 and error_type(refused) == "IdempotencyKeyReused"
    assert not SecurityGroupRule.objects.filter(port_range_min=81).exists()


def test_only_admins_list_hosts(as_alice, as_adam, adam, alice, project_a, sync_channel):  # noqa: F811
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, host="compute1")
    assert as_alice.get("/sgweb-hosts").status_code == 403
    listed = as_adam.get("/sgweb-hosts").json()["sgweb_hosts"]
    assert [(h["name"], h["ports"], h["alive"]) for h in listed] == [("compute1", 1, False)]
    assert listed[0]["queue"] == "host.compute1"


def test_a_host_with_any_neutron_name_is_shown_and_decommissioned(
    as_adam,
    adam,
    alice,
    project_a,
    sync_channel,  # noqa: F811
):
    network, _ = network_with_subnet(alice, project_a)
    vm = port(adam, project_a, network, host=ODD_HOST)
    path = f"/sgweb-hosts/{quote(ODD_HOST, safe='')}"
    shown = as_adam.get(path).json()["sgweb_host"]
    assert shown["name"] == ODD_HOST and shown["queue"].startswith("host.~")
    refused = as_adam.delete(path)
    assert refused.status_code == 409 and "bound port" in refused.json()["NeutronError"]["message"]
    assert as_adam.delete(path + "?force=true").status_code == 204
    assert not Host.objects.filter(name=ODD_HOST).exists()
    assert Port.objects.get(pk=vm.pk).host is None
    entry = AuditEntry.objects.filter(object_type="host").get()
    assert entry.object_repr == ODD_HOST and entry.before["unbound_ports"] == [str(vm.pk)]
    assert as_adam.get(path).status_code == 404


def test_a_host_whose_agent_still_reports_is_not_decommissioned(
    as_adam,
    sync_channel,  # noqa: F811
):
    Host.objects.create(name="compute5")
    beat = json.dumps({"at": 1e12, "pid": 7, "status": "in-sync"})
    sync_channel.redis.set(sync_channel.keys("compute5").heartbeat, beat, ex=30)
    refused = as_adam.delete("/sgweb-hosts/compute5")
    assert refused.status_code == 409 and error_type(refused) == "HostInUse"
    assert Host.objects.filter(name="compute5").exists()
