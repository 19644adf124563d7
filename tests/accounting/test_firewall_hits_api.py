"""The firewall rule hits API beside the FWaaS resources (issue 16): shaped like the
security-group rule hits; windows, 400s, tenants, readers, shared rules."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sgweb.accounting.firewall import record_firewall
from sgweb.fwaas import actions as fwaas_actions
from tests.accounting.firewall_documents import NodeAgent, alices_firewall, fw_builtin, fw_hit
from tests.controlplane.api_helpers import NeutronClient, error_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def fw(alice, project_a):
    fw = alices_firewall(alice, project_a)
    agent = NodeAgent(host="network1")
    record_firewall(agent.firewall([]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 4), fw_hit(fw.icmp, 2, router="r2")]))
    record_firewall(agent.firewall([fw_hit(fw.icmp, 1), fw_builtin("fw-default-drop", 3)]))
    fw.end = agent.at  # type: ignore[attr-defined]
    return fw


def test_a_firewall_rules_hits_give_totals_first_and_last_hit_and_a_dense_series(alice, fw):
    response = NeutronClient(alice).get(
        f"/fwaas/firewall_rules/{fw.icmp.id}/hits", {"window": "5m", "end": fw.end}
    )
    assert response.status_code == 200, response.content
    hits = response.json()["firewall_rule_hits"]
    assert (hits["packets"], hits["bytes"], hits["window_packets"]) == (7, 7 * 84, 7)
    assert hits["first_hit_at"] and hits["last_hit_at"] and hits["unused_days"] == 0
    assert hits["window"]["step"] == 10 and len(hits["series"]["packets"]) == 30


def test_a_policys_hits_list_its_rules_in_policy_order_even_the_unused_ones(alice, fw):
    response = NeutronClient(alice).get(
        f"/fwaas/firewall_policies/{fw.policy.id}/hits", {"window": "1h", "end": fw.end}
    )
    assert response.status_code == 200
    rules = response.json()["firewall_policy_hits"]["rules"]
    assert [(r["position"], r["name"], r["packets"]) for r in rules] == [
        (1, "allow-icmp", 7), (2, "deny-db", 0)
    ]  # fmt: skip
    assert rules[1]["last_hit_at"] is None


@pytest.mark.parametrize(
    "params", [{"window": "yesterday"}, {"window": "365d"}, {"window": "1h", "step": "7s"}]
)
def test_a_malformed_or_too_large_window_is_a_400(alice, fw, params):
    response = NeutronClient(alice).get(f"/fwaas/firewall_rules/{fw.icmp.id}/hits", params)
    assert response.status_code == 400
    assert error_type(response) == "InvalidInput"


def test_an_outsider_gets_404_and_a_reader_may_read(charlie, rita, fw):
    for path in (f"/fwaas/firewall_rules/{fw.icmp.id}/hits",
                 f"/fwaas/firewall_policies/{fw.policy.id}/hits"):  # fmt: skip
        assert NeutronClient(charlie).get(path).status_code == 404
        assert NeutronClient(rita).get(path).status_code == 200
        assert NeutronClient().get(path).status_code == 401
    assert NeutronClient(charlie).get("/fwaas/firewall_rules/nope/hits").status_code == 404


def test_a_shared_rules_hits_are_its_own_projects_to_read(adam, charlie, project_a, project_b, fw):
    """Its hits add up every router that uses it, other projects' too."""
    shared = fwaas_actions.create_rule(
        adam, project_a, name="shared-ssh", protocol="tcp", destination_port="22",
        action="allow", shared=True,
    )  # fmt: skip
    theirs = fwaas_actions.create_policy(charlie, project_b, name="b-policy",
                                         firewall_rules=[shared])  # fmt: skip
    client = NeutronClient(charlie)
    assert client.get(f"/fwaas/firewall_rules/{shared.id}").status_code == 200, "visible"
    assert client.get(f"/fwaas/firewall_rules/{shared.id}/hits").status_code == 404
    rules = client.get(f"/fwaas/firewall_policies/{theirs.id}/hits").json()
    assert rules["firewall_policy_hits"]["rules"] == [
        {"position": 1, "id": str(shared.id), "name": "shared-ssh", "hits_hidden": True}
    ]
    assert NeutronClient(adam).get(f"/fwaas/firewall_rules/{shared.id}/hits").status_code == 200


def test_the_firewall_hits_routes_are_in_the_openapi_schema(client, db):
    schema = client.get("/api/schema").content
    for path in (b"/fwaas/firewall_rules/{object_id}/hits",
                 b"/fwaas/firewall_policies/{object_id}/hits"):  # fmt: skip
        assert b"/networking/v2.0" + path in schema


def test_a_scrape_has_firewall_rule_hits_and_the_built_in_origins(client, project_a, fw):
    text = client.get("/metrics").content.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    labels = (("firewall_rule_id", str(fw.icmp.id)), ("project_id", project_a.id.hex))
    assert samples[("sgweb_firewall_rule_hits_packets_total", labels)] == 7
    assert samples[("sgweb_firewall_rule_hits_bytes_total", labels)] == 7 * 84
    assert ("sgweb_firewall_rule_last_hit_timestamp_seconds", labels) in samples
    builtin = (("host", "network1"), ("kind", "fw-default-drop"))
    assert samples[("sgweb_firewall_builtin_packets_total", builtin)] == 3
    node = (("host", "network1"),)
    assert samples[("sgweb_firewall_accounting_lost_intervals_total", node)] == 0
    assert samples[("sgweb_firewall_accounting_read_seconds", node)] == 0.0035
