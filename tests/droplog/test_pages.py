"""The drops pages: what they show to whom, and where "Trace this" and "Allow this" lead."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from sgweb.droplog import actions
from sgweb.droplog.models import DropFlow
from sgweb.security.models import SecurityGroupRule
from tests.controlplane.api_helpers import NeutronClient
from tests.droplog.batches import blocked_ping, blocked_ssh

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def logged(world, agent, bravo_port):
    actions.record(agent.batch(blocked_ssh(world.web), blocked_ping(bravo_port)))
    return world


def flow_of(port) -> DropFlow:
    return DropFlow.objects.get(port=port)


def query_of(response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response["Location"]).query)


def test_a_ports_drops_page_shows_the_flow_explained_with_trace_and_allow(alice, logged):
    page = client_for(alice).get(f"/drops?port_id={logged.web.pk}")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Drops" in text and "port web1" in text
    assert "dropped at port web1 ingress by the default drop" in text
    assert "203.0.113.9:40000" in text and "Trace this" in text and "Allow this" in text
    assert 'data-drops-live="/ws/drops"' in text


def test_the_drops_page_and_api_show_the_conntrack_state_the_agent_derived(alice, world, agent):
    actions.record(agent.batch(blocked_ssh(world.web, ct_state="UNTRACKED")))
    text = client_for(alice).get(f"/drops?port_id={world.web.pk}").content.decode()
    assert "<span data-drop-ct-state>UNTRACKED</span>" in text
    # Traced as the raw table decides (the group is stateful): the same words as a NEW drop.
    assert "dropped at port web1 ingress by the default drop" in text
    (found,) = NeutronClient(alice).get("/sgweb-drops").json()["drops"]
    assert found["ct_state"] == "UNTRACKED"


@pytest.mark.parametrize("subject", ["port_id", "security_group_id", "host", "project_id"])
def test_the_drops_page_renders_per_port_group_host_and_project(alice, logged, subject):
    value = {
        "port_id": logged.web.pk, "security_group_id": logged.group.pk, "host": "compute1",
        "project_id": logged.web.project_id,
    }[subject]  # fmt: skip
    page = client_for(alice).get("/drops", {subject: str(value)})
    assert page.status_code == 200
    assert "203.0.113.9" in page.content.decode()


def test_an_outsider_sees_no_drop_of_another_project_on_any_page(charlie, logged):
    client = client_for(charlie)
    text = client.get("/drops").content.decode()
    assert "web1" not in text and "203.0.113.9" not in text and "bravo" in text.lower()
    assert client.get(f"/drops?port_id={logged.web.pk}").status_code == 404
    assert client.get(f"/drops?security_group_id={logged.group.pk}").status_code == 404
    assert client.get(f"/drops?project_id={logged.web.project_id}").status_code == 404
    assert "203.0.113.9" not in client.get("/drops?host=compute1").content.decode()
    key = flow_of(logged.web).key
    assert client.get(f"/drops/{key}/trace").status_code == 404
    assert client.get(f"/drops/{key}/allow").status_code == 404
    assert "web1" not in client.get("/").content.decode()


def test_filters_narrow_the_page_and_a_bad_one_says_why(alice, logged):
    client = client_for(alice)
    assert "203.0.113.9" not in client.get("/drops?direction=egress").content.decode()
    assert "203.0.113.9" in client.get("/drops?protocol=tcp&port=22").content.decode()
    assert "203.0.113.9" in client.get("/drops?address=203.0.113.9").content.decode()
    refused = client.get("/drops?address=not-an-address")
    assert refused.status_code == 200 and "Give one IP address." in refused.content.decode()


def test_trace_this_opens_the_trace_form_filled_in_with_the_flow(alice, logged):
    response = client_for(alice).get(f"/drops/{flow_of(logged.web).key}/trace")
    assert response.status_code == 302 and urlsplit(response["Location"]).path == "/traces/new"
    assert query_of(response) == {
        "source": ["203.0.113.9"], "destination": [f"port:{logged.web.pk}"],
        "protocol": ["tcp"], "port": ["22"],
    }  # fmt: skip
    form = client_for(alice).get(response["Location"]).content.decode()
    assert "203.0.113.9" in form and "web1" in form


def test_allow_this_opens_the_groups_rule_form_with_the_narrowest_rule_and_adds_nothing(
    alice, logged
):
    rules_before = SecurityGroupRule.objects.count()
    client = client_for(alice)
    response = client.get(f"/drops/{flow_of(logged.web).key}/allow")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.path == f"/security-groups/{logged.group.pk}" and target.fragment == "add-rule"
    assert query_of(response) == {
        "direction": ["ingress"], "ethertype": ["IPv4"], "protocol": ["tcp"],
        "port_range_min": ["22"], "port_range_max": ["22"], "remote_kind": ["cidr"],
        "remote_ip_prefix": ["203.0.113.9/32"],
    }  # fmt: skip
    form = client.get(response["Location"]).content.decode()
    assert (
        'value="203.0.113.9/32"' in form
        and 'name="port_range_min" class="mono" inputmode="numeric" value="22"' in form
    )
    assert SecurityGroupRule.objects.count() == rules_before


def test_allow_this_names_the_remote_group_when_the_source_is_a_port_of_the_project(
    alice, logged, agent
):
    web_address = logged.web.fixed_ips.first().ip_address
    actions.record(agent.batch(blocked_ssh(logged.db, src=web_address)))
    response = client_for(alice).get(f"/drops/{flow_of(logged.db).key}/allow")
    assert query_of(response)["remote_kind"] == ["group"]
    assert query_of(response)["remote_group_id"] == [str(logged.group.pk)]


def test_readers_see_drops_but_get_no_allow_button(rita, logged):
    text = client_for(rita).get(f"/drops?port_id={logged.web.pk}").content.decode()
    assert "Trace this" in text and "Allow this" not in text


def test_the_overview_lists_the_ports_with_the_most_drops_in_the_last_hour(alice, world, agent):
    import time

    now = time.time()
    actions.record(agent.batch(blocked_ssh(world.web, first_seen=now - 5, last_seen=now, count=9)))
    text = client_for(alice).get("/").content.decode()
    assert "Most drops, last hour" in text
    assert f'data-dropping-port="{world.web.pk}"' in text


def test_the_drops_page_says_what_the_hosts_agent_shed(alice, world, agent):
    actions.record(agent.batch(blocked_ssh(world.web), shed=40))
    text = client_for(alice).get(f"/drops?port_id={world.web.pk}").content.decode()
    assert "shed log packets: compute1 40" in text
