"""The agent's revision, coalescing and failure logic against a FakeRunner (no kernel, no Redis)."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest

from sgweb.firewall.model import EGRESS, IPV6
from sgweb.kernel.apply import HostFirewall
from tests.agents.fakes import (
    FROM_DB,
    PORT_A,
    SSH,
    MemoryStore,
    RecordingCutter,
    RecordingReporter,
    rule,
    state,
)
from tests.fakerunner import FakeRunner
from worker.agent import Agent


@pytest.fixture
def cutter() -> RecordingCutter:
    return RecordingCutter()


@pytest.fixture
def parts(cutter: RecordingCutter) -> tuple[Agent, MemoryStore, RecordingReporter, FakeRunner]:
    runner = FakeRunner()
    store = MemoryStore()
    reporter = RecordingReporter()
    firewall = HostFirewall(runner, "sgwt-unit-host")
    agent = Agent("compute1", store, firewall, reporter, cut_fn=cutter.cut)
    return agent, store, reporter, runner


def restores(runner: FakeRunner) -> list[tuple[str, ...]]:
    return [call.argv for call in runner.calls if call.argv[0].endswith("tables-restore")]


def test_the_first_sync_applies_the_whole_state_and_reports_it(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state(web_rules=(SSH, FROM_DB)))
    outcome = agent.sync(1, "test")
    assert outcome.action == "applied"
    report = reporter.applies[-1]
    assert report["ok"] and report["mode"] == "full" and report["revision"] == 1
    assert report["rules"]["4"] > 0 and report["sets"] >= 1
    assert {argv[0] for argv in restores(runner)} == {"iptables-restore", "ip6tables-restore"}
    assert agent.status == "in-sync"
    assert all(call.netns == "sgwt-unit-host" for call in runner.calls)


def test_a_task_for_a_revision_already_applied_touches_neither_redis_nor_the_kernel(parts) -> None:
    agent, store, _, runner = parts
    store.publish(3, state())
    agent.sync(3)
    calls, fetches = len(runner.calls), store.fetches
    assert agent.sync(2).action == "skipped"
    assert agent.sync(3).action == "skipped"
    assert (len(runner.calls), store.fetches) == (calls, fetches)


def test_a_burst_of_nudges_coalesces_into_one_apply_of_the_newest_state(parts) -> None:
    agent, store, reporter, _ = parts
    store.publish(1, state())
    agent.sync(1)
    store.publish(10, state(web_rules=(SSH,)))  # revisions 2..10 were published in a burst
    outcomes = [agent.sync(revision).action for revision in range(2, 11)]
    assert outcomes == ["applied"] + ["skipped"] * 8
    assert [r["revision"] for r in reporter.applies] == [1, 10]


def test_an_older_stored_revision_never_overwrites_a_newer_applied_one(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(5, state(web_rules=(SSH,)))
    agent.sync(5)
    store.publish(4, state())  # a slow publisher's older document
    calls = len(runner.calls)
    assert agent.sync(None).action == "skipped"
    assert agent.sync(6).action == "skipped"  # a nudge naming a newer revision finds only r4
    assert len(runner.calls) == calls
    assert agent.applied is not None and agent.applied.revision == 5
    assert len(reporter.applies) == 1


def test_a_membership_change_swaps_ipsets_and_restores_no_iptables(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state(web_rules=(FROM_DB,)))
    agent.sync(1)
    before = len(restores(runner))
    store.publish(2, state(web_rules=(FROM_DB,), db_members=("192.0.2.20", "192.0.2.21")))
    assert agent.sync(2).action == "applied"
    report = reporter.applies[-1]
    assert report["iptables_restored"] == [] and report["ipset_changed"]
    assert len(restores(runner)) == before
    swaps = [call.input for call in runner.calls if call.argv == ("ipset", "restore")]
    assert any("192.0.2.21" in (text or "") for text in swaps)


def test_a_rule_change_restores_only_the_changed_chains(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state())
    agent.sync(1)
    runner.calls.clear()
    store.publish(2, state(web_rules=(SSH,)))
    agent.sync(2)
    report = reporter.applies[-1]
    assert report["mode"] == "incremental" and report["iptables_restored"] == [4]
    (text,) = [call.input for call in runner.calls if call.argv[0] == "iptables-restore"]
    assert "--dport 22" in text
    assert f"-i{PORT_A[:10]}" in text and "-o" + PORT_A[:10] not in text


def test_a_state_the_kernel_refuses_keeps_the_previous_rules_and_marks_the_host_failed(
    parts,
) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state())
    agent.sync(1)
    runner.on(
        ("iptables-restore",),
        returncode=1,
        stderr="iptables-restore: line 3 failed",
    )
    store.publish(2, state(web_rules=(SSH,)))
    assert agent.sync(2).action == "failed"
    report = reporter.applies[-1]
    assert not report["ok"] and report["revision"] == 2
    assert report["error_line"] and report["still_applied"] == 1
    assert agent.status == "failed" and agent.applied.revision == 1
    # The maintenance loop does not hammer the kernel with the same refused state...
    calls = len(runner.calls)
    assert agent.sync(None).action == "skipped" and len(runner.calls) == calls
    # ...and once the kernel accepts, the next revision is diffed against what is in force.
    runner._script.clear()
    store.publish(3, state(web_rules=(SSH,)))
    assert agent.sync(3).action == "applied"
    assert reporter.applies[-1]["mode"] == "incremental" and agent.status == "in-sync"


def test_a_state_the_compiler_refuses_never_reaches_the_kernel(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state())
    agent.sync(1)
    calls = len(runner.calls)
    bad = state(web_rules=(SSH,))
    clash = bad.ports[0].__class__(**{**_fields(bad.ports[0]), "id": PORT_A[:10] + "ffffffff"})
    store.publish(2, bad.__class__(**{**_fields(bad), "ports": (*bad.ports, clash)}))
    assert agent.sync(2).action == "failed"
    assert "compiler" in reporter.applies[-1]["error"]
    assert len(runner.calls) == calls


def test_the_same_state_under_a_newer_revision_is_recorded_without_kernel_work(parts) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state())
    agent.sync(1)
    calls = len(runner.calls)
    store.publish(2, state())
    assert agent.sync(2).action == "unchanged"
    assert len(runner.calls) == calls and reporter.applies[-1]["revision"] == 2


def test_removing_a_rule_cuts_the_port_connections_it_allowed_after_the_apply(
    parts, cutter
) -> None:
    agent, store, reporter, runner = parts
    store.publish(1, state(web_rules=(SSH,)))
    agent.sync(1)
    store.publish(2, state())
    agent.sync(2)
    assert agent.cuts.wait_idle()
    assert not [call for call in runner.calls if call.argv[0] == "conntrack"], "no process"
    (cut,) = cutter.cuts
    assert cut.addresses == ("192.0.2.10",) and (cut.protocol, cut.port) == ("tcp", 22)
    assert reporter.applies[-1]["conntrack_cuts"][0]["why"] == "ingress rule removed"
    assert agent.heartbeat_payload()["conntrack"]["deleted"] == 1


def test_the_applied_state_is_remembered_only_once_its_cuts_ran(parts) -> None:
    """A crash between the apply and the cut leaves the older state for the restart to cut
    against: nothing a removed rule allowed survives a kill -9."""
    agent, store, _, _ = parts
    release = threading.Event()
    agent.cuts._cut = lambda cuts: (release.wait(10), RecordingCutter().cut(cuts))[1]
    store.publish(1, state(web_rules=(SSH,)))
    agent.sync(1)
    assert agent.cuts.wait_idle()
    store.publish(2, state())
    agent.sync(2)  # returns while its cut waits
    assert SSH.id in json.dumps(store.applied_state())  # still revision 1's state
    release.set()
    assert agent.cuts.wait_idle()
    assert SSH.id not in json.dumps(store.applied_state())


def test_a_restarted_agent_cuts_connections_of_rules_removed_while_it_was_down(
    parts, cutter
) -> None:
    agent, store, reporter, _runner = parts
    store.publish(1, state(web_rules=(SSH,)))
    agent.sync(1)
    assert agent.cuts.wait_idle()
    # same Redis, new process
    restarted = Agent("compute1", store, agent.firewall, reporter, cut_fn=cutter.cut)
    store.publish(2, state())  # the SSH rule went while the agent was down
    assert restarted.full_sync("agent start").action == "applied"
    assert reporter.applies[-1]["conntrack_cuts"][0]["why"] == "ingress rule removed"
    assert restarted.cuts.wait_idle() and cutter.cuts


def test_no_stored_state_makes_the_agent_ask_the_control_plane(parts) -> None:
    agent, _, reporter, runner = parts
    assert agent.sync(1).action == "missing"
    assert reporter.requests and not runner.calls


def test_a_shrunk_kernel_chain_is_reported_as_drift_and_repaired(parts) -> None:
    agent, store, reporter, _runner = parts
    store.publish(1, state(web_rules=(SSH,)))
    agent.sync(1)
    # The fake kernel answers every iptables-save with nothing: everything looks flushed.
    findings = agent.check_drift()
    assert findings and findings.missing_chains
    assert reporter.drifts and reporter.drifts[-1]["repaired"]
    assert reporter.applies[-1]["reason"] == "drift repair"


def _fields(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in obj.__slots__}  # type: ignore[attr-defined]


def test_a_group_listing_its_ipv6_egress_rule_first_still_lets_ipv4_out(parts) -> None:
    """Every new group has egress-any rules for both families, in rule-id order (random).

    The lab and the default groups depend on this: if the IPv4 egress rule were lost, no VM
    could send anything. (Known compiler issue: its match cache keys ignore the ethertype, so
    the IPv6 rule's match is reused for IPv4 and then dropped as a duplicate.)
    """
    agent, store, _, runner = parts
    v6_first = (rule("e6", EGRESS, ethertype=IPV6), rule("e4", EGRESS))
    base = state()
    groups = tuple(
        dataclasses.replace(group, rules=v6_first) if group.name == "web" else group
        for group in base.security_groups
    )
    store.publish(1, dataclasses.replace(base, security_groups=groups))
    agent.sync(1)
    (text,) = [call.input for call in runner.calls if call.argv[0] == "iptables-restore"]
    egress_chain = f"neutron-openvswi-o{PORT_A[:10]}"
    assert f'-A {egress_chain} -m comment --comment "sg-rule e4" -j RETURN' in text


def test_the_before_apply_hook_sees_each_state_before_the_kernel_and_cannot_stop_the_apply(
    parts,
) -> None:
    agent, store, reporter, runner = parts
    seen: list[tuple[int, int]] = []  # (ports in the state, kernel calls made so far)

    def before_apply(host_state) -> None:  # type: ignore[no-untyped-def]
        seen.append((len(host_state.ports), len(restores(runner))))
        raise RuntimeError("ulogd would not start")

    agent.before_apply = before_apply
    store.publish(1, state(web_rules=(SSH,)))
    assert agent.sync(1, "test").action == "applied"
    assert seen == [(len(state().ports), 0)] and reporter.applies[-1]["ok"]


def test_the_agent_reads_its_log_level_with_the_rest_of_its_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from worker.config import AgentConfig, ConfigError

    monkeypatch.setenv("SGWEB_HOST", "compute-1")
    monkeypatch.delenv("SGWEB_LOG_LEVEL", raising=False)
    assert AgentConfig.from_env().log_level == "INFO"
    monkeypatch.setenv("SGWEB_LOG_LEVEL", "debug")
    assert AgentConfig.from_env().log_level == "DEBUG"
    monkeypatch.setenv("SGWEB_LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="SGWEB_LOG_LEVEL"):
        AgentConfig.from_env()
