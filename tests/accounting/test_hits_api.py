"""The hits API beside the Neutron resources: windows, steps, 400s, tenants and readers."""

from __future__ import annotations

import pytest

from sgweb.accounting import actions
from tests.accounting.documents import Agent, alices_lab, dropped, rule_hit
from tests.controlplane.api_helpers import NeutronClient, error_type

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(alice, project_a):
    lab = alices_lab(alice, project_a)
    agent = Agent()
    actions.record(agent.document([]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 4, 336), dropped(lab, 2)]))
    actions.record(agent.document([rule_hit(lab, lab.icmp, 1, 84)]))
    lab.end = agent.at  # type: ignore[attr-defined]
    return lab


def test_a_rules_hits_give_totals_first_and_last_hit_and_a_dense_series(alice, lab):
    response = NeutronClient(alice).get(
        f"/security-group-rules/{lab.icmp.id}/hits", {"window": "5m", "end": lab.end}
    )
    assert response.status_code == 200, response.content
    hits = response.json()["rule_hits"]
    assert (hits["packets"], hits["bytes"], hits["window_packets"]) == (5, 420, 5)
    assert hits["first_hit_at"] and hits["last_hit_at"]
    assert hits["window"]["step"] == 10
    assert len(hits["series"]["packets"]) == 30
    assert sum(hits["series"]["packets"]) == 5
    assert hits["unused_days"] == 0


def test_a_groups_hits_list_every_rule_even_the_unused_ones(alice, lab):
    response = NeutronClient(alice).get(
        f"/security-groups/{lab.group.id}/hits", {"window": "1h", "end": lab.end}
    )
    assert response.status_code == 200
    rules = {r["id"]: r for r in response.json()["security_group_hits"]["rules"]}
    assert rules[str(lab.icmp.id)]["packets"] == 5
    assert rules[str(lab.ssh.id)]["packets"] == 0 and rules[str(lab.ssh.id)]["last_hit_at"] is None


def test_a_ports_hits_give_accepted_and_dropped_per_direction_and_its_origins(alice, lab):
    response = NeutronClient(alice).get(
        f"/ports/{lab.port.id}/hits", {"window": "1h", "step": "1m", "end": lab.end}
    )
    assert response.status_code == 200
    hits = response.json()["port_hits"]
    assert sum(hits["directions"]["ingress"]["accepted"]) == 5
    assert sum(hits["directions"]["ingress"]["dropped"]) == 2
    assert sum(hits["directions"]["egress"]["dropped"]) == 0
    assert {o["kind"] for o in hits["origins"]} == {"sg-rule", "fallback"}


@pytest.mark.parametrize(
    "params",
    [
        {"window": "yesterday"},
        {"window": "0h"},
        {"window": "-1h"},
        {"window": "365d"},  # longer than anything is kept
        {"window": "1d", "step": "10s", "end": "soon"},
        {"window": "1h", "step": "7s"},  # not a kept step
        {"window": "30d", "step": "1m"},  # 1 min steps are kept a week
    ],
)
def test_a_malformed_or_too_large_window_is_a_400_saying_why(alice, lab, params):
    response = NeutronClient(alice).get(f"/security-group-rules/{lab.icmp.id}/hits", params)
    assert response.status_code == 400
    assert error_type(response) == "InvalidInput"
    assert response.json()["NeutronError"]["message"].startswith("Invalid input for")


def test_too_many_points_is_a_400_naming_a_coarser_step(alice, lab, settings):
    settings.SGWEB_ACCOUNTING_RETENTION = ((10, 30 * 86400),)
    response = NeutronClient(alice).get(
        f"/security-group-rules/{lab.icmp.id}/hits", {"window": "30d", "step": "10s"}
    )
    assert response.status_code == 400
    assert "coarser step" in response.json()["NeutronError"]["message"]


def test_an_outsider_gets_404_and_a_reader_may_read(charlie, rita, lab):
    for path in (
        f"/security-group-rules/{lab.icmp.id}/hits",
        f"/security-groups/{lab.group.id}/hits",
        f"/ports/{lab.port.id}/hits",
    ):
        assert NeutronClient(charlie).get(path).status_code == 404
        assert NeutronClient(rita).get(path).status_code == 200
        assert NeutronClient().get(path).status_code == 401
    assert NeutronClient(charlie).get("/ports/not-a-uuid/hits").status_code == 404


def test_the_hits_routes_are_in_the_openapi_schema_and_the_extension_list(client, alice):
    schema = client.get("/api/schema").content
    for path in (b"/security-group-rules/{object_id}/hits", b"/security-groups/{object_id}/hits",
                 b"/ports/{object_id}/hits"):  # fmt: skip
        assert b"/networking/v2.0" + path in schema
    extensions = NeutronClient(alice).get("/extensions").json()["extensions"]
    assert "sgweb-rule-hits" in {e["alias"] for e in extensions}
