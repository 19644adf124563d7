"""/api/traces: start a trace, read it back, refusals in Neutron's error shape."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from sgweb.traces import proof


@pytest.fixture
def client_for(monkeypatch):
    monkeypatch.setattr(proof, "agent_alive", lambda host: False)

    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


def test_posting_a_trace_answers_201_with_the_static_verdict_and_its_page(world, alice, client_for):
    response = client_for(alice).post(
        "/api/traces",
        {"source": "web1", "destination": "db1", "protocol": "tcp", "port": 5432},
        format="json",
    )
    assert response.status_code == 201, response.content
    trace = response.json()["trace"]
    assert trace["static"]["verdict"] == "DROP"
    assert trace["url"] == f"/traces/{trace['id']}"
    assert trace["status"] == "failed"  # no agent runs in this test
    detail = client_for(alice).get(f"/api/traces/{trace['id']}").json()["trace"]
    assert [event["type"] for event in detail["events"]] == ["trace-static", "trace-result"]
    listing = client_for(alice).get("/api/traces").json()["traces"]
    assert [t["id"] for t in listing] == [trace["id"]]


def test_bad_input_answers_400_and_other_projects_traces_404(world, alice, charlie, client_for):
    response = client_for(alice).post(
        "/api/traces", {"source": "web1", "destination": "db1", "protocol": "tcp"}, format="json"
    )
    assert response.status_code == 400
    assert "port" in response.json()["NeutronError"]["message"]
    created = client_for(alice).post(
        "/api/traces", {"source": "web1", "destination": "db1", "protocol": "icmp"}, format="json"
    )
    trace_id = created.json()["trace"]["id"]
    assert client_for(charlie).get(f"/api/traces/{trace_id}").status_code == 404
    assert client_for(charlie).get("/api/traces").json()["traces"] == []


def test_anonymous_requests_are_refused(world):
    assert APIClient().get("/api/traces").status_code in (401, 403)


def test_readers_may_read_and_share_traces_but_not_start_them(world, alice, rita, client_for):
    created = client_for(alice).post(
        "/api/traces", {"source": "web1", "destination": "db1", "protocol": "icmp"}, format="json"
    )
    trace_id = created.json()["trace"]["id"]
    assert client_for(rita).get(f"/api/traces/{trace_id}").status_code == 200
    for fields in (
        {"source": "web1", "destination": "db1", "protocol": "icmp"},
        {"source": "198.51.100.7", "destination": str(world.db.pk), "protocol": "tcp", "port": 22},
    ):
        refused = client_for(rita).post("/api/traces", fields, format="json")
        assert refused.status_code == 403, refused.content
        assert refused.json()["NeutronError"]["type"] == "PolicyNotAuthorized"
    assert [t["id"] for t in client_for(rita).get("/api/traces").json()["traces"]] == [trace_id]


def test_members_trace_only_their_projects_ports_and_admins_anything(
    world, alice, charlie, adam, client_for
):
    outsider = client_for(charlie).post(
        "/api/traces",
        {"source": str(world.web.pk), "destination": "203.0.113.9", "protocol": "icmp"},
        format="json",
    )
    assert outsider.status_code == 404  # another project's port is not even named
    member = client_for(alice).post(
        "/api/traces",
        {"source": "203.0.113.9", "destination": "web1", "protocol": "tcp", "port": 22},
        format="json",
    )
    assert member.status_code == 201, member.content
    admin = client_for(adam).post(
        "/api/traces",
        {"source": str(world.web.pk), "destination": str(world.db.pk), "protocol": "icmp"},
        format="json",
    )
    assert admin.status_code == 201, admin.content
