"""After a firewall change, the page it was made on says where it went: the network node whose
routers carry it, the router revision, and whether the node's agent applied it (issue 16, the
firewall side of issue 14's "After a change, say where it went")."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from sgweb import dispatch
from sgweb.dashboard import delivery
from sgweb.fwaas import actions
from sgweb.fwaas.models import NodeRouterApply
from sgweb.hostsync.status import Liveness
from sgweb.live import events
from sgweb.live.hoststatus import router_applies, visible_host_names
from tests.dashboard.conftest import World, client_for
from tests.dashboard.firewall_world import Firewalled, firewalled

# Real commits: the network nodes are told (and the change's router revision known) after commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fw(world: World) -> Firewalled:
    return firewalled(world.people)


def move_deny_db_up(client: Client, fw: Firewalled) -> str:
    url = reverse("dashboard:firewall_policy_move_rule", args=[fw.policy.pk, fw.deny_db.pk])
    response = client.post(url, {"direction": "up"}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_a_rule_moved_on_a_policy_page_is_followed_to_the_network_node(
    world: World, fw: Firewalled
) -> None:
    page = move_deny_db_up(client_for(world.people.alice), fw)
    assert "data-delivery=" in page
    assert "prod-egress: rule deny-db moved" in page
    # The node never ran an agent in this test: said so, not "applied".
    assert "network1: no agent, pending." in page
    assert "No host is affected" not in page


def test_a_node_with_a_live_agent_is_applying_until_its_report_arrives(
    world: World, fw: Firewalled, heartbeats: dict[str, object]
) -> None:
    heartbeats["network1"] = Liveness("network1", True, time.time())
    page = move_deny_db_up(client_for(world.people.alice), fw)
    # Publishing is off in tests: the node's router revision is not known yet.
    assert "network1: queued." in page


def test_the_tracked_change_names_the_node_and_the_router_revision_published() -> None:
    sent = dispatch.Delivery()
    sent.nodes_reached(["network1"])
    sent.nodes_published({"network1": 7})
    sent.nodes_published({"network1": 5})  # an older answer never lowers it
    assert sent.nodes == {"network1": 7} and sent.hosts == {}


def test_a_firewall_action_inside_tracking_delivery_records_its_network_node(
    world: World, fw: Firewalled
) -> None:
    with dispatch.tracking_delivery() as sent:
        actions.move_rule(world.people.alice, fw.policy, fw.deny_db, offset=-1)
    # Publishing is off in tests: the node is known, its router revision is not.
    assert sent.nodes == {"network1": None} and sent.hosts == {}


def test_an_applied_revision_is_said_with_the_node_and_the_time(fw: Firewalled) -> None:
    at = time.time() - 0.3
    NodeRouterApply.objects.create(host_name="network1", revision=4, ok=True)
    view = delivery.take_one({"what": "x", "at": at, "hosts": {}, "nodes": {"network1": 4}})
    assert view.sentence.startswith("Applied on network1 (revision 4) in 0.")
    assert view.css == "ok"
    # A later revision carries it too, but its time is not this change's: none is said.
    view = delivery.take_one({"what": "x", "at": at, "hosts": {}, "nodes": {"network1": 3}})
    assert view.sentence == "Applied on network1 (revision 3)."
    # A change that left the node's state as it was: the revision in force carries it.
    later = time.time() + 5
    view = delivery.take_one({"what": "x", "at": later, "hosts": {}, "nodes": {"network1": 4}})
    assert view.sentence == "Applied on network1 (revision 4)."


def test_a_refused_revision_is_said_with_the_agents_error(fw: Firewalled) -> None:
    NodeRouterApply.objects.create(
        host_name="network1", revision=4, ok=False, error="iptables-restore: line 7 failed"
    )
    view = delivery.take_one(
        {"what": "x", "at": time.time(), "hosts": {}, "nodes": {"network1": 4}}
    )
    assert view.sentence == (
        "network1: apply failed, the previous rules stay (iptables-restore: line 7 failed)."
    )
    assert view.css == "bad"
    # An older refusal is not this change's: the node is still to apply it.
    view = delivery.take_one(
        {"what": "x", "at": time.time(), "hosts": {}, "nodes": {"network1": 5}}
    )
    assert view.sentence == "network1: no agent, pending."


def test_several_nodes_are_counted_like_hosts(world: World, fw: Firewalled) -> None:
    from sgweb.networks.actions import create_host

    create_host(world.people.adam, name="network2", network_node=True)
    NodeRouterApply.objects.create(host_name="network1", revision=4, ok=True)
    view = delivery.take_one(
        {"what": "x", "at": time.time(), "hosts": {}, "nodes": {"network1": 4, "network2": 2}}
    )
    assert view.sentence.startswith("Applied on 1/2 network nodes (revision 4); network2: ")


def test_a_change_that_reaches_no_router_says_so_in_its_own_words(
    world: World, fw: Firewalled
) -> None:
    people = world.people
    lonely = actions.create_policy(
        people.alice, people.project_a, name="unused", firewall_rules=[fw.allow_ssh]
    )
    url = reverse("dashboard:firewall_policy_move_rule", args=[lonely.pk, fw.allow_ssh.pk])
    page = client_for(people.alice).post(url, {"direction": "down"}, follow=True)
    assert "No router is affected: nothing to apply." in page.content.decode()


def test_a_refused_firewall_change_leaves_nothing_to_follow(world: World, fw: Firewalled) -> None:
    url = reverse("dashboard:firewall_policy_insert_rule", args=[fw.policy.pk])
    client = client_for(world.people.alice)
    # allow-ssh is in the policy already: the action refuses it.
    refused = client.post(url, {"firewall_rule_id": str(fw.allow_ssh.pk), "where": "top"})
    assert refused.status_code >= 400
    assert "data-delivery=" not in client.get(reverse("dashboard:firewall_rules")).content.decode()


def test_router_apply_reports_become_router_apply_messages() -> None:
    report = {"host": "network1", "revision": 4, "ok": True, "duration_ms": 3.2,
              "kernel_applied_at": 1764190000.5, "started_at": 1764190000.4}  # fmt: skip
    assert events.protocol_messages("router.apply", report) == [
        {"type": "router-apply", "host": "network1", "revision": 4, "ok": True,
         "duration_ms": 3.2, "error": "", "at": 1764190000.5}
    ]  # fmt: skip
    refused = {"host": "network1", "revision": 5, "ok": False, "error": "no such chain",
               "started_at": 1764190001.0, "duration_ms": 500}  # fmt: skip
    (message,) = events.protocol_messages("router.apply", refused)
    assert message["error"] == "no such chain" and message["at"] == 1764190001.5


def test_members_watch_the_network_nodes_of_their_routers_and_their_last_applies(
    world: World, fw: Firewalled
) -> None:
    assert "network1" in visible_host_names(world.people.alice, None)
    assert "network1" not in visible_host_names(world.people.charlie, None)
    NodeRouterApply.objects.create(host_name="network1", revision=4, ok=True)
    (message,) = router_applies({"network1"})
    assert message["type"] == "router-apply" and message["revision"] == 4
    assert message["at"] <= datetime.now(tz=UTC).timestamp()


def test_a_nodes_apply_report_is_recorded_then_announced_to_the_pages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sgweb.hostsync import routers_publish

    sent: list[tuple[str, dict[str, object], str]] = []
    seen_by_then: list[int] = []
    monkeypatch.setattr(
        dispatch,
        "_event_sender",
        lambda kind, payload, scope: (
            sent.append((kind, payload, scope)),
            seen_by_then.append(NodeRouterApply.objects.filter(host_name="network1").count()),
        ),
    )
    routers_publish.record_router_apply({"host": "network1", "revision": 4, "ok": True})
    assert [(kind, scope) for kind, _, scope in sent] == [("router.apply", "global")]
    assert seen_by_then == [1]  # recorded before announced: a page drawn then reads it
