"""After a change, the page it was made on says where it went: each host it reaches, the
revision that carries it, and whether that host applied it (and how long it took)."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.test import Client

from sgweb import dispatch
from sgweb.dashboard import delivery
from sgweb.hostsync.models import HostEvent, HostEventKind
from sgweb.hostsync.status import Liveness
from sgweb.networks.models import Host
from sgweb.security import actions
from tests.dashboard.conftest import World
from tests.dashboard.test_changes import rule_post

# Real commits: the hosts are published (and the change's revisions known) after commit.
pytestmark = pytest.mark.django_db(transaction=True)


def add_ssh_rule(client: Client, world: World) -> str:
    response = client.post(
        f"/security-groups/{world.web.pk}/rules",
        rule_post(preset="custom", protocol="tcp", port_range_min="2222"),
        follow=True,
    )
    assert response.status_code == 200
    return response.content.decode()


def test_a_rule_added_on_a_host_without_an_agent_says_it_is_pending_there(
    world: World, as_alice: Client
) -> None:
    Host.objects.filter(name="compute-1").update(status="unknown")
    page = add_ssh_rule(as_alice, world)
    assert "data-delivery=" in page
    revision = Host.objects.get(name="compute-1").desired_revision
    assert f"Applied on 0/1 hosts (revision {revision}); compute-1: no agent, pending." in page
    assert "Added ingress tcp/2222." in page


def test_a_rule_applied_by_every_host_says_so_with_the_revision_and_the_time(
    world: World, as_alice: Client, heartbeats: dict[str, object]
) -> None:
    heartbeats["compute-1"] = Liveness("compute-1", True, time.time())
    page = add_ssh_rule(as_alice, world)
    host = Host.objects.get(name="compute-1")
    revision = host.desired_revision
    assert f"Applied on 0/1 hosts (revision {revision}); compute-1: applying revision" in page
    # The agent reports: the same change, drawn again, reads it from the host's apply history.
    Host.objects.filter(pk=host.pk).update(applied_revision=revision, status="in-sync")
    HostEvent.objects.create(
        host=host, kind=HostEventKind.APPLY, revision=revision, detail={"finished_at": time.time()}
    )
    view = delivery.take_one(
        {"what": "web", "at": time.time() - 0.4, "hosts": {"compute-1": revision}}
    )
    assert view.sentence.startswith(f"Applied on 1/1 hosts (revision {revision}) in 0.")
    assert view.css == "ok"


def test_the_box_is_shown_once(world: World, as_alice: Client) -> None:
    add_ssh_rule(as_alice, world)
    assert "data-delivery=" not in as_alice.get(f"/security-groups/{world.web.pk}").content.decode()


def test_a_port_change_is_followed_to_the_ports_host(world: World, as_adam: Client) -> None:
    response = as_adam.post(f"/ports/{world.port_a.pk}/groups/{world.web.pk}/remove", follow=True)
    page = response.content.decode()
    assert "port web-1: group detached" in page
    assert "compute-1" in page and "data-delivery-host" in page


def test_a_change_that_reaches_no_host_says_so(world: World, as_charlie: Client) -> None:
    # Charlie's port is bound to no host: nothing to apply anywhere, said calmly.
    response = as_charlie.post(
        f"/ports/{world.port_b.pk}/groups/{world.group_b.pk}/remove", follow=True
    )
    assert "No host is affected: nothing to apply." in response.content.decode()


def test_changes_published_once_as_a_batch_are_followed_too(world: World) -> None:
    with dispatch.tracking_delivery() as sent, transaction.atomic(), dispatch.publish_once():
        for port in (2001, 2002):
            actions.create_security_group_rule(
                world.people.alice, world.web, direction="ingress", protocol="tcp",
                port_range_min=port, port_range_max=port,
            )  # fmt: skip
    revision = Host.objects.get(name="compute-1").desired_revision
    assert sent.hosts == {"compute-1": revision}


def test_times_are_said_in_tenths_and_a_very_fast_apply_is_not_zero() -> None:
    assert delivery.format_seconds(0.01) == "under 0.1 s"
    assert delivery.format_seconds(0.4) == "0.4 s"
    assert delivery.format_seconds(12.3) == "12 s"
    assert delivery.format_seconds(None) == ""
