"""Durable, content-compared, per-host sync: the outbox, the reconciler and odd host names.

Real Redis (a key space of its own per test) and the test database; the agents are stood in
for by heartbeats written the way `worker.app` writes them.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from django.db import transaction
from django.utils import timezone

from sgweb.firewall import manifest
from sgweb.hostsync import publish
from sgweb.hostsync.models import PublishIntent
from sgweb.hostsync.reconcile import reconcile
from sgweb.networks.models import Host
from sgweb.wire import sync as protocol
from tests.agents.fakes import SSH, state
from worker.store import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

ODD_NAMES = [
    "rack 1",
    "compute:7",
    "dc/ams/rack-3",
    "ünïcödé-节点",
    "~looks-encoded",
    "%41",
    "tab\there",
    "h-" * 127 + "ü",  # 255 characters
]


@pytest.fixture
def database_state(monkeypatch):
    """What the database says each host should hold; publish and reconcile read it."""
    holder = {"state": state(), "broken": set()}

    def build(name: str):
        if name in holder["broken"]:
            raise RuntimeError(f"cannot build {name}")
        return holder["state"]

    monkeypatch.setattr(publish, "state_builder", build)
    return holder


def stored(channel, host: str) -> protocol.Desired:
    return protocol.parse_desired(channel.redis.get(channel.keys(host).desired))


def beat(channel, host: str, *, revision: int, digest: str, status: str = "in-sync") -> None:
    payload = {"at": time.time(), "applied_revision": revision, "applied_digest": digest,
               "status": status, "pid": 4242}  # fmt: skip
    channel.redis.set(channel.keys(host).heartbeat, json.dumps(payload), ex=30)


def age_intents(seconds: float = 5.0) -> None:
    PublishIntent.objects.update(created_at=timezone.now() - dt.timedelta(seconds=seconds))


def test_plain_host_names_keep_their_queue_and_keys() -> None:
    assert protocol.host_queue("compute1") == "host.compute1"
    assert protocol.host_keys("compute1", "sgweb").desired == "sgweb:host:compute1:desired"
    assert protocol.host_token("sgwt-123-abcdef-h1.lab_2") == "sgwt-123-abcdef-h1.lab_2"


@pytest.mark.parametrize("name", ODD_NAMES)
def test_any_name_neutron_accepts_becomes_a_safe_token_that_decodes_back(name) -> None:
    token = protocol.host_token(name)
    assert token.startswith("~")
    assert all(ch.isascii() and ch.isprintable() and ch not in " :/" for ch in token)
    assert protocol.host_from_token(token) == name
    assert protocol.host_queue(name) == f"host.{token}"


def test_a_255_character_plain_name_stays_plain() -> None:
    assert protocol.host_queue("h" * 255) == "host." + "h" * 255


def test_names_no_host_can_have_are_refused() -> None:
    for bad in ("", "h" * 256):
        with pytest.raises(ValueError):
            protocol.host_token(bad)


@pytest.mark.parametrize("name", ["rack 1", "dc/ams/ünï 节点"])
def test_a_host_with_an_odd_name_is_published_and_read_by_its_agent(
    sync_channel, database_state, name
) -> None:
    Host.objects.create(name=name)
    result = publish.publish_host(name, via=sync_channel)
    agent_side = RedisStore(sync_channel.redis_url, name, sync_channel.prefix)
    fetched = agent_side.fetch()
    assert fetched is not None and fetched.revision == result.revision
    assert fetched.digest == manifest.state_digest(database_state["state"])


def test_one_host_that_cannot_be_built_does_not_stop_the_others(
    sync_channel, database_state
) -> None:
    for name in ("alpha", "bravo", "charlie"):
        Host.objects.create(name=name)
    database_state["broken"].add("bravo")
    results = {r.host: r for r in publish.publish_hosts(["alpha", "bravo", "charlie"], "x")}
    assert results["bravo"].error and not results["alpha"].error and not results["charlie"].error
    assert stored(sync_channel, "alpha").revision and stored(sync_channel, "charlie").revision
    kept = PublishIntent.objects.get(host_name="bravo")
    assert "cannot build bravo" in kept.last_error and kept.attempts == 1


def test_intents_are_written_with_the_change_and_cleared_by_the_publish(
    sync_channel, database_state
) -> None:
    Host.objects.create(name="compute1")
    hook = publish.PublishingHostSync()
    with transaction.atomic():
        receipts = hook.changed({"compute1"}, "rule deleted")
    assert PublishIntent.objects.filter(host_name="compute1").count() == 1
    publish.publish_changed({host: [r] for host, r in receipts.items()}, "rule deleted")
    assert not PublishIntent.objects.exists()


def test_a_change_whose_publisher_died_after_commit_is_published_by_the_reconciler(
    sync_channel, database_state
) -> None:
    Host.objects.create(name="compute1")
    publish.publish_host("compute1", via=sync_channel)
    before = stored(sync_channel, "compute1")
    # The change commits with its intent; the process dies before its after-commit publish.
    database_state["state"] = state(web_rules=(SSH,))
    with transaction.atomic():
        publish.PublishingHostSync().changed({"compute1"}, "rule added")
    age_intents()
    outcome = reconcile(via=sync_channel)
    assert outcome.published == ["compute1"]
    after = stored(sync_channel, "compute1")
    assert after.revision > before.revision
    assert after.digest == manifest.state_digest(database_state["state"])
    assert not PublishIntent.objects.exists()


def test_the_reconciler_compares_content_not_revision_numbers(sync_channel, database_state) -> None:
    """Revisions agree, yet Redis holds another state (the lost publish of issue 10)."""
    Host.objects.create(name="compute1")
    publish.publish_host("compute1", via=sync_channel)
    database_state["state"] = state(web_rules=(SSH,))  # committed, never published, no intent
    outcome = reconcile(via=sync_channel)
    assert outcome.diverged == ["compute1"] and outcome.published == ["compute1"]
    assert stored(sync_channel, "compute1").digest == manifest.state_digest(database_state["state"])
    assert reconcile(via=sync_channel).published == []  # converged: nothing more to do


def test_an_agent_that_applied_another_state_is_nudged(sync_channel, database_state) -> None:
    name = f"{sync_channel.prefix}-compute1"  # queues are not prefixed: a name of our own
    Host.objects.create(name=name)
    published = publish.publish_host(name, via=sync_channel)
    beat(sync_channel, name, revision=published.revision - 1, digest="an-older-state")
    queue = protocol.host_queue(name)
    sync_channel.redis.delete(queue)
    try:
        outcome = reconcile(via=sync_channel)
        assert outcome.nudged == [name]
        assert sync_channel.redis.llen(queue) == 1
    finally:
        sync_channel.redis.delete(queue)


def test_an_agent_holding_another_state_under_a_higher_revision_gets_one_above_it(
    sync_channel, database_state
) -> None:
    """Redis lost its counter and numbered the state below what the agent applied."""
    name = f"{sync_channel.prefix}-compute1"  # it gets a nudge: a queue of our own
    Host.objects.create(name=name)
    published = publish.publish_host(name, via=sync_channel)
    beat(sync_channel, name, revision=published.revision + 50, digest="something-else")
    try:
        outcome = reconcile(via=sync_channel)
        assert outcome.published == [name]
        assert stored(sync_channel, name).revision > published.revision + 50
    finally:
        sync_channel.redis.delete(protocol.host_queue(name))


def test_a_host_shown_in_sync_whose_agent_holds_another_state_is_shown_syncing(
    sync_channel, database_state
) -> None:
    Host.objects.create(name="compute1", status="in-sync", applied_digest="stale")
    publish.publish_host("compute1", via=sync_channel)
    reconcile(via=sync_channel)
    assert Host.objects.get(name="compute1").status == "syncing"


def test_a_reconcile_round_goes_on_past_a_host_that_fails(sync_channel, database_state) -> None:
    for name in ("alpha", "bravo"):
        Host.objects.create(name=name)
    database_state["broken"].add("alpha")
    outcome = reconcile(via=sync_channel)
    assert "alpha" in outcome.failed
    assert outcome.published == ["bravo"]


def test_a_publish_in_flight_is_left_to_its_publisher_for_the_grace_period(
    sync_channel, database_state
) -> None:
    Host.objects.create(name="compute1")
    with transaction.atomic():  # committed; its publisher is about to publish
        publish.PublishingHostSync().changed({"compute1"}, "rule added")
    assert reconcile(via=sync_channel).published == []
    age_intents()
    assert reconcile(via=sync_channel).published == ["compute1"]
