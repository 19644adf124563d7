"""GET /networking/v2.0/sgweb-drops: newest first, filters, 400s, and tenants kept apart."""

from __future__ import annotations

import pytest

from sgweb.droplog import actions
from tests.controlplane.api_helpers import NeutronClient
from tests.droplog.batches import RUN, blocked_ping, blocked_ssh

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(world, agent, bravo_port):
    actions.record(agent.batch(blocked_ssh(world.web), blocked_ping(bravo_port)))
    actions.record(agent.batch(blocked_ssh(world.db, src="198.51.100.7", last_seen=RUN + 30)))
    return world


def drops(user, **params):
    response = NeutronClient(user).get("/sgweb-drops", params)
    assert response.status_code == 200, response.content
    return response.json()["drops"]


def test_a_member_sees_their_projects_drops_newest_first_with_explanations(alice, logged):
    found = drops(alice)
    assert [d["port_id"] for d in found] == [str(logged.db.pk), str(logged.web.pk)]
    assert found[1]["explanation"].startswith("dropped at port web1 ingress by the default drop")
    assert found[1]["protocol"] == "tcp" and found[1]["count"] == 3


def test_an_outsider_sees_no_drop_of_another_project(charlie, logged, bravo_port):
    found = drops(charlie)
    assert [d["port_id"] for d in found] == [str(bravo_port.pk)]
    assert drops(charlie, port_id=str(logged.web.pk)) == []
    assert drops(charlie, project_id=logged.web.project_id.hex) == []


def test_readers_and_admins_see_every_project(rita, adam, logged):
    assert len(drops(rita)) == 3 and len(drops(adam)) == 3


def test_filters_narrow_by_port_group_host_direction_protocol_address_and_port(alice, logged):
    web = str(logged.web.pk)
    assert [d["port_id"] for d in drops(alice, port_id=web)] == [web]
    assert len(drops(alice, security_group_id=str(logged.group.pk))) == 2
    assert len(drops(alice, host="compute1")) == 2 and drops(alice, host="elsewhere") == []
    assert drops(alice, direction="egress") == [] and len(drops(alice, direction="ingress")) == 2
    assert len(drops(alice, protocol="tcp")) == 2 and drops(alice, protocol="udp") == []
    assert [d["src"] for d in drops(alice, address="198.51.100.7")] == ["198.51.100.7"]
    assert len(drops(alice, port="22")) == 2 and drops(alice, port="80") == []
    assert [d["port_id"] for d in drops(alice, since=str(RUN + 20))] == [str(logged.db.pk)]


def test_a_drop_proposes_the_narrowest_rule_that_would_allow_it(alice, logged):
    (web,) = drops(alice, port_id=str(logged.web.pk))
    assert web["suggested_rule"] == {
        "security_group_id": str(logged.group.pk), "direction": "ingress",
        "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "203.0.113.9/32", "remote_group_id": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "params",
    [{"port_id": "nope"}, {"direction": "up"}, {"protocol": "carrier-pigeon"},
     {"address": "300.1.1.1"}, {"port": "70000"}, {"since": "yesterday"}, {"limit": "0"}],
)  # fmt: skip
def test_a_malformed_filter_is_a_clear_400(alice, logged, params):
    response = NeutronClient(alice).get("/sgweb-drops", params)
    assert response.status_code == 400
    assert response.json()["NeutronError"]["message"].startswith("Invalid input")


def test_the_list_costs_the_same_queries_for_three_flows_or_thirty(alice, world, agent):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = NeutronClient(alice)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/sgweb-drops").status_code == 200
        return len(captured)

    actions.record(agent.batch(*(blocked_ssh(world.web, sport=42000 + n) for n in range(3))))
    queries()  # the first request also notes the token's use
    few = queries()
    actions.record(agent.batch(*(blocked_ssh(world.db, sport=43000 + n) for n in range(27))))
    assert queries() == few


def test_the_drops_route_is_in_the_openapi_schema_and_the_extension_list(client, alice):
    assert b"/networking/v2.0/sgweb-drops" in client.get("/api/schema").content
    extensions = NeutronClient(alice).get("/extensions").json()["extensions"]
    assert "sgweb-drops" in {e["alias"] for e in extensions}


def test_an_anonymous_caller_gets_401(logged):
    assert NeutronClient().get("/sgweb-drops").status_code == 401


def test_what_agents_shed_is_said_to_those_with_ports_on_the_host(alice, charlie, rita, world):
    from tests.droplog.batches import FlowAgent

    actions.record(FlowAgent("compute1").batch(blocked_ssh(world.web), shed=40))
    actions.record(FlowAgent("compute2").batch(shed=7))
    shed = NeutronClient(alice).get("/sgweb-drops").json()["shed"]
    assert shed == [{"host": "compute1", "shed": 40}]  # alice has no port on compute2
    assert NeutronClient(charlie).get("/sgweb-drops").json()["shed"] == []
    everything = NeutronClient(rita).get("/sgweb-drops").json()["shed"]
    assert everything == [{"host": "compute1", "shed": 40}, {"host": "compute2", "shed": 7}]
