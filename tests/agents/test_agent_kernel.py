"""The agent's full apply against a real kernel (a scratch namespace), both paths.

Whole tables when only our chains live there; --noflush when another program has rules too,
which must survive. Restarts must not duplicate our jumps and must remove stale chains.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from sgweb.kernel.topology import remove_namespaces
from tests.agents.fakes import FROM_DB, PORT_B, SSH, MemoryStore, RecordingReporter, state
from worker.agent import Agent

pytestmark = pytest.mark.kernel

FOREIGN = ["-A", "INPUT", "-s", "203.0.113.9/32", "-j", "DROP"]


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-"
    name = prefix + "agent"
    runner = default_runner()
    try:
        runner.run(["ip", "netns", "add", name])
        yield name
    finally:
        remove_namespaces(prefix, runner)


def saved(netns: str) -> str:
    return default_runner().run(["iptables-save", "-t", "filter"], netns=netns).stdout


def agent_for(netns: str, store: MemoryStore) -> tuple[Agent, RecordingReporter]:
    reporter = RecordingReporter()
    return Agent("compute1", store, HostFirewall(default_runner(), netns), reporter), reporter


def test_alone_in_its_tables_the_agent_replaces_them_whole_and_restarts_cleanly(netns) -> None:
    store = MemoryStore()
    store.publish(1, state(web_rules=(SSH, FROM_DB)))
    first, reporter = agent_for(netns, store)
    first.full_sync("agent start")
    assert "iptables.4.tables" in reporter.applies[-1]["steps"]
    store.publish(2, state(web_rules=(SSH,), port_b_security=False))  # B's chains go
    second, reporter = agent_for(netns, store)  # a restarted agent knows nothing
    second.full_sync("agent start")
    text = saved(netns)
    assert text.count("-A INPUT -j neutron-openvswi-INPUT") == 1
    assert f"neutron-openvswi-i{PORT_B[:10]}" not in text
    assert second.check_drift() is not None and not second.check_drift()


def test_beside_another_programs_rules_the_agent_keeps_them_and_cleans_up_its_own(netns) -> None:
    runner = default_runner()
    runner.run(["iptables", "-N", "other-program"], netns=netns)
    runner.run(["iptables", *FOREIGN], netns=netns)
    store = MemoryStore()
    store.publish(1, state(web_rules=(SSH, FROM_DB)))
    first, reporter = agent_for(netns, store)
    first.full_sync("agent start")
    assert "iptables.4" in reporter.applies[-1]["steps"]  # the --noflush path
    store.publish(2, state(web_rules=(SSH,), port_b_security=False))
    second, reporter = agent_for(netns, store)
    second.full_sync("agent start")
    text = saved(netns)
    assert "-A INPUT -s 203.0.113.9/32 -j DROP" in text and ":other-program" in text
    assert text.count("-A INPUT -j neutron-openvswi-INPUT") == 1
    assert f"neutron-openvswi-i{PORT_B[:10]}" not in text
    assert reporter.applies[-1]["stale_removed"] >= 3
    assert not second.check_drift()
