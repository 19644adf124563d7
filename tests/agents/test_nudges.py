"""The publish's nudge on each host's Redis channel, heard by the agent's listener (real Redis,
real publishes; the kernel is a FakeRunner)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sgweb.hostsync import publish
from sgweb.hostsync.channel import SyncChannel
from sgweb.kernel.apply import HostFirewall
from sgweb.wire import sync as protocol
from tests.agents.fakes import SSH, RecordingCutter, RecordingReporter, rule, state
from tests.fakerunner import FakeRunner
from worker.agent import Agent
from worker.nudges import NudgeListener
from worker.store import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

HOST = "compute1"


@pytest.fixture
def current_state(monkeypatch):
    """What the 'database' says right now; publish reads it through state_builder."""
    holder = {"state": state()}
    monkeypatch.setattr(publish, "state_builder", lambda name: holder["state"])
    return holder


@pytest.fixture
def agent(sync_channel: SyncChannel) -> tuple[Agent, RecordingReporter]:
    reporter = RecordingReporter()
    store = RedisStore(sync_channel.redis_url, HOST, sync_channel.prefix)
    firewall = HostFirewall(FakeRunner(), "sgwt-nudges")
    return Agent(HOST, store, firewall, reporter, cut_fn=RecordingCutter().cut), reporter


@pytest.fixture
def listening(sync_channel, agent) -> Iterator[NudgeListener]:
    listener = NudgeListener(agent[0], sync_channel.redis_url, HOST, sync_channel.prefix)
    try:
        yield listener
    finally:
        listener.stop()
        listener.join(timeout=5)


def wait_until(what: str, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def applied_revisions(reporter: RecordingReporter) -> list[int]:
    return [r["revision"] for r in reporter.applies if r["ok"] and r["mode"] != "unchanged"]


def test_a_listening_agent_applies_what_a_publish_nudges_it_about(
    sync_channel, current_state, agent, listening
) -> None:
    the_agent, _ = agent
    publish.publish_host(HOST, via=sync_channel)
    assert the_agent.full_sync("start").action == "applied"
    listening.start()
    wait_until("the subscription", listening.subscribed.is_set)
    current_state["state"] = state(web_rules=(SSH,))
    told = publish.publish_host(HOST, "rule added", via=sync_channel)
    wait_until("the nudged revision applied", lambda: the_agent.applied.revision == told.revision)
    assert the_agent.applied.digest == told.digest and listening.heard >= 1


def test_an_agent_that_missed_a_nudge_reads_the_newest_state_when_it_subscribes_again(
    sync_channel, current_state, agent, listening
) -> None:
    the_agent, _ = agent
    publish.publish_host(HOST, via=sync_channel)
    the_agent.full_sync("start")
    current_state["state"] = state(web_rules=(SSH,))
    told = publish.publish_host(HOST, "while the agent was away", via=sync_channel)  # unheard
    assert the_agent.applied.revision < told.revision
    listening.start()  # (re)subscribing: Redis kept nothing for it, the agent reads Redis
    wait_until("the missed revision applied", lambda: the_agent.applied.revision == told.revision)
    assert listening.heard == 0


def test_nudges_from_two_control_workers_in_any_order_never_apply_an_older_revision(
    sync_channel, current_state, agent, listening
) -> None:
    the_agent, reporter = agent
    publish.publish_host(HOST, via=sync_channel)
    the_agent.full_sync("start")
    listening.start()
    wait_until("the subscription", listening.subscribed.is_set)
    workers = [
        SyncChannel(sync_channel.redis_url, sync_channel.broker_url, sync_channel.prefix)
        for _ in range(2)
    ]
    told = []
    for i, port in enumerate(range(8000, 8012)):  # the two workers take turns
        current_state["state"] = state(
            web_rules=(rule(f"r-{port}", protocol="tcp", port_range_min=port, port_range_max=port),)
        )
        told.append(publish.publish_host(HOST, f"change {i}", via=workers[i % 2]).revision)
        if len(told) > 1:  # the other worker's nudge for the revision before, arriving late
            workers[(i + 1) % 2].redis.publish(
                sync_channel.keys(HOST).nudge, protocol.nudge_message(told[-2])
            )
    newest = protocol.parse_desired(sync_channel.redis.get(sync_channel.keys(HOST).desired))
    wait_until("the newest revision applied", lambda: the_agent.applied.revision == newest.revision)
    time.sleep(0.2)
    revisions = applied_revisions(reporter)
    assert revisions == sorted(set(revisions)) and revisions[-1] == newest.revision
    assert the_agent.applied.digest == newest.digest
    for worker in workers:
        worker.close()
