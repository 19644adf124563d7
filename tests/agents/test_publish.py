"""Publishing desired states: revisions, ordering, coalescing nudges, outages (real Redis)."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time

import pytest

from sgweb.firewall import codec, manifest
from sgweb.hostsync import publish
from sgweb.hostsync.channel import SyncChannel, use_channel
from sgweb.hostsync.models import PublishIntent
from sgweb.hostsync.status import desired_revisions, host_liveness
from sgweb.networks.models import Host, Network, Port
from sgweb.tenancy.models import Project
from sgweb.wire import sync as protocol
from tests.agents.fakes import SSH, state
from worker.store import PieceCache, assemble_desired

pytestmark = [pytest.mark.redis, pytest.mark.django_db]


@pytest.fixture
def current_state(monkeypatch):
    """What the 'database' says right now; publish reads it through state_builder."""
    holder = {"state": state()}
    monkeypatch.setattr(publish, "state_builder", lambda name: holder["state"])
    return holder


def stored(channel: SyncChannel, host: str) -> protocol.Desired:
    return protocol.parse_desired(channel.redis.get(channel.keys(host).desired))


def assembled(channel: SyncChannel, document: protocol.Desired):
    """The whole state a stored manifest names, as an agent reads it."""
    return assemble_desired(document, channel.redis, channel.prefix, PieceCache()).assembled


def _body(message: bytes) -> str:
    """The task arguments of a kombu message as Redis holds it (base64 JSON in an envelope)."""
    envelope = json.loads(message)
    return base64.b64decode(envelope["body"]).decode()


def test_each_change_gets_a_higher_revision_and_the_digest_of_its_state(
    sync_channel, current_state
) -> None:
    Host.objects.create(name="compute1")
    first = publish.publish_host("compute1", via=sync_channel)
    current_state["state"] = state(web_rules=(SSH,))
    second = publish.publish_host("compute1", via=sync_channel)
    assert second.revision > first.revision
    document = stored(sync_channel, "compute1")
    assert document.revision == second.revision
    assert document.digest == manifest.state_digest(current_state["state"])
    assert assembled(sync_channel, document) == current_state["state"]
    assert Host.objects.get(name="compute1").desired_revision == second.revision


def test_an_older_revision_never_overwrites_a_newer_one(sync_channel, current_state) -> None:
    keys = sync_channel.keys("compute1")
    client = sync_channel.redis

    def store(revision: int, text: str) -> int:
        document = protocol.desired_document(revision, codec.digest(text), text, time.time())
        return client.eval(
            protocol.STORE_DESIRED_LUA, 3, keys.desired, keys.desired_revision,
            keys.desired_digest, revision, document, codec.digest(text),
        )  # fmt: skip

    newer, older = codec.dumps(state(web_rules=(SSH,))), codec.dumps(state())
    assert store(7, newer) == publish.STORED
    assert store(6, older) == publish.OLDER
    assert stored(sync_channel, "compute1").revision == 7
    assert store(8, newer) == publish.UNCHANGED


def test_publishers_racing_always_leave_the_newest_state_under_the_highest_revision(
    sync_channel, monkeypatch
) -> None:
    """Many 'web servers' commit and publish at once; INCR-before-read keeps the order right."""
    lock = threading.Lock()
    committed = {"version": 0}

    def build(name: str):
        with lock:
            version = committed["version"]
        time.sleep(0.001 * (version % 3))  # uneven read delays reorder the publishers
        return dataclasses.replace(state(), host=f"v{version}")

    monkeypatch.setattr(publish, "state_builder", build)
    client = sync_channel.redis
    keys = sync_channel.keys("compute1")

    def writer() -> None:
        for _ in range(10):
            with lock:
                committed["version"] += 1
            revision = client.eval(protocol.NEXT_REVISION_LUA, 1, keys.revision, 0)
            text = codec.dumps(build("compute1"))
            document = protocol.desired_document(revision, codec.digest(text), text, 0.0)
            client.eval(
                protocol.STORE_DESIRED_LUA, 3, keys.desired, keys.desired_revision,
                keys.desired_digest, revision, document, codec.digest(text),
            )  # fmt: skip

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = stored(sync_channel, "compute1")
    assert final.state["host"] == f"v{committed['version']}"
    # The very last revision may have found the same state already stored (nothing new).
    assert final.revision <= int(client.get(keys.revision))


def test_the_same_state_twice_stores_nothing_new(sync_channel, current_state) -> None:
    first = publish.publish_host("compute1", via=sync_channel)
    again = publish.publish_host("compute1", via=sync_channel)
    assert again.outcome == publish.UNCHANGED and again.revision == first.revision


def test_after_redis_lost_its_data_revisions_continue_above_what_the_database_recorded(
    sync_channel, current_state
) -> None:
    Host.objects.create(name="compute1")
    before = publish.publish_host("compute1", via=sync_channel).revision
    for key in sync_channel.redis.scan_iter(f"{sync_channel.prefix}:*"):
        sync_channel.redis.delete(key)  # a Redis restarted without persistence
    after = publish.publish_host("compute1", via=sync_channel).revision
    assert after > before


def test_a_publish_nudges_the_listening_agent_on_its_channel_and_queues_nothing(
    sync_channel, current_state
) -> None:
    # Queue names are shared by every test run on this Redis: a host name of its own keeps
    # other runs' messages out of the count.
    host = f"nudge-{sync_channel.prefix}"
    listener = sync_channel.redis.pubsub()
    listener.subscribe(sync_channel.keys(host).nudge)
    try:
        assert listener.get_message(timeout=5)["type"] == "subscribe"
        result = publish.publish_host(host, "rule added", via=sync_channel)
        message = listener.get_message(timeout=5)
        assert message is not None and message["channel"].decode().endswith(f"{host}:nudge")
        assert protocol.parse_nudge(message["data"]) == result.revision
        assert listener.get_message(timeout=0.2) is None  # one nudge per publish
        assert sync_channel.redis.llen(protocol.host_queue(host)) == 0  # nothing piles up
    finally:
        listener.close()


def test_an_unreachable_redis_keeps_the_intent_to_publish_without_raising(current_state) -> None:
    dead = SyncChannel(redis_url="redis://127.0.0.1:1/0", broker_url="redis://127.0.0.1:1/0")
    with use_channel(dead):
        results = publish.publish_hosts(["compute1"], "rule added")
    assert results[0].error
    assert PublishIntent.objects.filter(host_name="compute1").exists()


def test_liveness_comes_from_the_heartbeat(sync_channel) -> None:
    beat = {"at": time.time(), "applied_revision": 4, "status": "in-sync", "pid": 42}
    sync_channel.redis.set(sync_channel.keys("compute1").heartbeat, json.dumps(beat), ex=10)
    live = host_liveness(["compute1", "compute2"])
    assert live["compute1"].alive and live["compute1"].applied_revision == 4
    assert not live["compute2"].alive
    assert desired_revisions(["compute1"]) == {"compute1": None}


def test_a_change_reaching_many_hosts_is_published_by_the_control_worker(
    sync_channel, current_state
) -> None:
    from sgweb.hostsync.tasks import publish as publish_task

    names = [f"compute{i}" for i in range(publish.inline_hosts_limit() + 1)]
    assert publish.publish_changed({n: [] for n in names}, "group used everywhere") == []
    assert desired_revisions(names) == dict.fromkeys(names)  # nothing built in the request
    (message,) = sync_channel.redis.lrange(sync_channel.control_queue, 0, -1)
    assert json.loads(message)["headers"]["task"] == protocol.TASK_PUBLISH
    args, kwargs, _ = json.loads(_body(message))
    publish_task(*args, **kwargs)  # what the control worker does with it
    assert all(revision for revision in desired_revisions(names).values())


def test_a_change_reaching_a_few_hosts_is_published_before_the_request_ends(
    sync_channel, current_state
) -> None:
    results = publish.publish_changed({"compute1": [], "compute2": []}, "rule added")
    assert [r.host for r in results] == ["compute1", "compute2"]
    assert sync_channel.redis.llen(sync_channel.control_queue) == 0


def test_a_publish_marks_the_changed_ports_of_its_host_with_its_revision(
    sync_channel, current_state
) -> None:
    project = Project.objects.create(name="p")
    network = Network.objects.create(project=project, name="n")
    here, elsewhere = Host.objects.create(name="compute1"), Host.objects.create(name="compute2")
    changed = Port.objects.create(
        project=project, network=network, mac_address="fa:16:3e:00:00:01", host=here
    )
    applied = Port.objects.create(
        project=project,
        network=network,
        mac_address="fa:16:3e:00:00:02",
        host=here,
        host_revision=1,
    )
    other = Port.objects.create(
        project=project, network=network, mac_address="fa:16:3e:00:00:03", host=elsewhere
    )
    result = publish.publish_host("compute1", via=sync_channel)
    assert Port.objects.get(pk=changed.pk).host_revision == result.revision
    assert Port.objects.get(pk=applied.pk).host_revision == 1  # already carried earlier
    assert Port.objects.get(pk=other.pk).host_revision is None  # its host was not published


def test_a_port_change_that_leaves_the_state_alone_is_carried_by_the_stored_revision(
    sync_channel, current_state
) -> None:
    project = Project.objects.create(name="p")
    network = Network.objects.create(project=project, name="n")
    host = Host.objects.create(name="compute1")
    first = publish.publish_host("compute1", via=sync_channel)
    renamed = Port.objects.create(
        project=project, network=network, mac_address="fa:16:3e:00:00:01", host=host
    )
    again = publish.publish_host("compute1", via=sync_channel)  # same state: UNCHANGED
    assert again.outcome == publish.UNCHANGED and again.revision == first.revision
    assert Port.objects.get(pk=renamed.pk).host_revision == first.revision
