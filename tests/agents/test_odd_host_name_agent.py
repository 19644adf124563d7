"""A real agent process for a host whose name has spaces, a slash and unicode (issue 10).

`binding:host_id` is free text in Neutron. The agent (`python -m worker`, real Celery on the
real Redis) listens on the host's encoded nudge channel, consumes its encoded queue, reads its
encoded keys, and applies to a scratch namespace; a second revision reaches it only through
the publish's nudge on that channel, a third only through a sync task on that queue (the
reconciler's way; its own polling is set to ten minutes), so both names are proved, not just
the keys.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sgweb.hostsync import fanout, publish
from sgweb.hostsync.status import host_liveness
from sgweb.kernel.runner import default_runner
from sgweb.kernel.topology import remove_namespaces
from sgweb.networks.models import Host
from sgweb.wire import sync as protocol
from tests.agents.fakes import SSH, state
from tests.lab.stack import wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.redis, pytest.mark.django_db]

ODD = "rack 7/ünï 节点"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-"
    runner = default_runner()
    try:
        runner.run(["ip", "netns", "add", prefix + "odd"])
        yield prefix + "odd"
    finally:
        remove_namespaces(prefix, runner)


@pytest.fixture
def agent(sync_channel, netns):
    env = {
        "SGWEB_HOST": ODD,
        "SGWEB_NETNS": netns,
        "SGWEB_BROKER_URL": sync_channel.broker_url,
        "SGWEB_KEY_PREFIX": sync_channel.prefix,
        "SGWEB_CONTROL_QUEUE": sync_channel.control_queue,
        "SGWEB_POLL_INTERVAL_S": "600",
        "SGWEB_DRIFT_INTERVAL_S": "0",
        "SGWEB_OWNER_PID": str(os.getpid()),
        "PYTHONPATH": str(ROOT),
    }
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "worker"]
    process = default_runner().spawn(argv)
    try:
        yield process
    finally:
        process.stop(timeout=3)
        sync_channel.redis.delete(protocol.host_queue(ODD))


def _applied(sync_channel) -> dict:
    raw = sync_channel.redis.get(sync_channel.keys(ODD).applied)
    return json.loads(raw) if raw else {}


def test_an_agent_for_a_host_named_with_spaces_slashes_and_unicode_applies_its_state(
    sync_channel, agent, netns, monkeypatch
) -> None:
    current = {"state": state()}
    monkeypatch.setattr(publish, "state_builder", lambda name: current["state"])
    Host.objects.create(name=ODD)
    first = publish.publish_host(ODD, via=sync_channel)
    wait_for(
        "the agent's heartbeat",
        lambda: host_liveness([ODD])[ODD].alive,
        timeout=60,
        explain=lambda: str(agent.read_output()),
    )
    wait_for(
        "the first state applied",
        lambda: _applied(sync_channel).get("revision", 0) >= first.revision,
        timeout=60,
        explain=lambda: str(agent.read_output()),
    )
    current["state"] = state(web_rules=(SSH,))
    second = publish.publish_host(ODD, via=sync_channel)  # only the nudge can bring this one
    wait_for(
        "the second state applied through the encoded queue",
        lambda: _applied(sync_channel).get("revision", 0) >= second.revision,
        timeout=60,
        explain=lambda: str(agent.read_output()),
    )
    report = _applied(sync_channel)
    assert report["ok"] and report["host"] == ODD and report["digest"] == second.digest
    saved = default_runner().run(["iptables-save"], netns=netns).stdout
    assert "--dport 22" in saved

    current["state"] = state()
    monkeypatch.setattr(fanout, "_nudge", lambda told, via: 0)  # stored, nobody told
    third = publish.publish_host(ODD, via=sync_channel)
    sync_channel.send(protocol.TASK_SYNC, {"revision": third.revision}, protocol.host_queue(ODD))
    wait_for(
        "the third state applied through the encoded queue",
        lambda: _applied(sync_channel).get("revision", 0) >= third.revision,
        timeout=60,
        explain=lambda: str(agent.read_output()),
    )
