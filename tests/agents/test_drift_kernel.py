"""Drift that includes bypasses, against a real kernel (a scratch namespace per test).

What decides our traffic besides our own chains: rules placed ahead of our jumps in the
built-in chains, their policies, the bridge sysctls. Each is made for real with the admin's own
tools (iptables, ip6tables, sysctl) and the agent must say it in words, put right what is ours
and leave the rest in place. A check when nothing moved reads nothing but the nf_tables
generation and the sysctls (no process).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import CommandResult, SubprocessRunner, default_runner
from sgweb.kernel.topology import remove_namespaces
from sgweb.kernel.watch import KernelWatch
from tests.agents.fakes import SSH, MemoryStore, RecordingCutter, RecordingReporter, state
from worker.agent import Agent

pytestmark = pytest.mark.kernel


class CountingRunner:
    """The real runner, counting the processes it starts (a free check starts none)."""

    def __init__(self, runner: SubprocessRunner) -> None:
        self.runner = runner
        self.started: list[tuple[str, ...]] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> CommandResult:
        self.started.append(tuple(argv))
        return self.runner.run(argv, **kwargs)

    def spawn(self, argv: Sequence[str], **kwargs: Any) -> Any:
        return self.runner.spawn(argv, **kwargs)

    def release_netns(self, netns: str) -> None:
        self.runner.release_netns(netns)


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("kernel: needs root")
    prefix = f"sgwt-{os.getpid()}-{secrets.token_hex(3)}-"
    name = prefix + "drift"
    runner = default_runner()
    try:
        runner.run(["ip", "netns", "add", name])
        yield name
    finally:
        remove_namespaces(prefix, runner)


@pytest.fixture
def agent(netns: str) -> Iterator[tuple[Agent, RecordingReporter, CountingRunner]]:
    runner = CountingRunner(default_runner())
    store = MemoryStore()
    store.publish(1, state(web_rules=(SSH,)))
    reporter = RecordingReporter()
    watch = KernelWatch(netns)
    the_agent = Agent(
        "compute1", store, HostFirewall(runner, netns), reporter,  # type: ignore[arg-type]
        cut_fn=RecordingCutter().cut, watch=watch,
    )  # fmt: skip
    the_agent.full_sync("agent start")
    # Read whenever the generation moved (the agent spaces reads on a busy host; tested below).
    the_agent.drift_watch.read_share = 1.0
    assert not the_agent.check_drift()  # the first check learns the kernel as applied
    try:
        yield the_agent, reporter, runner
    finally:
        watch.close()


def sh(netns: str, *argv: str) -> str:
    return default_runner().run(list(argv), netns=netns).stdout


def chain_rules(netns: str, chain: str, table: str = "filter", family: int = 4) -> list[str]:
    command = "iptables-save" if family == 4 else "ip6tables-save"
    saved = sh(netns, command, "-t", table)
    return [line for line in saved.splitlines() if line.startswith(f"-A {chain} ")]


def test_an_accept_inserted_ahead_of_our_jumps_is_flagged_in_words_and_our_jumps_go_first(
    agent, netns
) -> None:
    the_agent, reporter, _ = agent
    sh(netns, "iptables", "-I", "FORWARD", "1", "-j", "ACCEPT")
    findings = the_agent.check_drift()
    assert findings and findings.bypasses
    report = reporter.drifts[-1]
    said = " ".join(report["words"])
    assert "IPv4 filter FORWARD: rule 1 `-j ACCEPT` is ahead of our jumps" in said
    assert "accepts matching packets before any security group sees them: a bypass" in said
    assert report["repaired"] and any("put back first" in line for line in report["repairs"])
    # Ours first again, the foreign rule left in place (not ours to delete), still reported.
    assert chain_rules(netns, "FORWARD") == [
        "-A FORWARD -j neutron-filter-top",
        "-A FORWARD -j neutron-openvswi-FORWARD",
        "-A FORWARD -j ACCEPT",
    ]
    assert any("Left in place" in alert and "-j ACCEPT" in alert for alert in report["alerts"])
    reports = len(reporter.drifts)
    assert not the_agent.check_drift(force=True)  # repaired: nothing to do, nothing new to say
    assert len(reporter.drifts) == reports
    sh(netns, "iptables", "-D", "FORWARD", "-j", "ACCEPT")
    assert not the_agent.check_drift()
    assert reporter.drifts[-1]["alerts"] == []  # the alert clears once the rule is gone


def test_bypasses_in_the_raw_table_and_in_ipv6_are_flagged_too(agent, netns) -> None:
    the_agent, reporter, _ = agent
    sh(netns, "iptables", "-t", "raw", "-I", "PREROUTING", "1", "-j", "CT", "--notrack")
    sh(netns, "ip6tables", "-I", "INPUT", "1", "-s", "2001:db8::/32", "-j", "ACCEPT")
    assert the_agent.check_drift()
    said = " ".join(reporter.drifts[-1]["words"])
    assert "IPv4 raw PREROUTING: rule 1 `-j CT --notrack` is ahead of our jumps" in said
    assert "untracked" in said
    assert "IPv6 filter INPUT: rule 1 `-s 2001:db8::/32 -j ACCEPT` is ahead" in said
    assert (
        chain_rules(netns, "PREROUTING", "raw")[0] == "-A PREROUTING -j neutron-openvswi-PREROUTING"
    )
    assert chain_rules(netns, "INPUT", family=6)[0] == "-A INPUT -j neutron-openvswi-INPUT"


def test_a_policy_change_is_flagged_and_left_as_the_admin_set_it(agent, netns) -> None:
    the_agent, reporter, _ = agent
    sh(netns, "iptables", "-P", "FORWARD", "DROP")
    the_agent.check_drift()
    report = reporter.drifts[-1]
    expected = "IPv4 filter FORWARD: policy changed from ACCEPT to DROP"
    assert any(expected in alert for alert in report["alerts"]), report
    assert ":FORWARD DROP" in sh(netns, "iptables-save", "-t", "filter")  # not ours to revert
    sh(netns, "iptables", "-P", "FORWARD", "ACCEPT")
    the_agent.check_drift()
    assert reporter.drifts[-1]["alerts"] == []


def test_bridge_sysctls_switched_off_are_flagged_and_switched_back_on(agent, netns) -> None:
    the_agent, reporter, _ = agent
    sh(netns, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
    assert the_agent.check_drift()
    report = reporter.drifts[-1]
    said = " ".join(report["words"])
    assert "net.bridge.bridge-nf-call-iptables is 0: bridged IPv4 traffic skips iptables" in said
    assert report["repaired"]
    assert sh(netns, "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").strip() == "1"


def test_a_check_when_nothing_moved_starts_no_process(agent, netns) -> None:
    the_agent, reporter, runner = agent
    # The first check after start said "no alerts" once (clearing a previous run's).
    assert [r["alerts"] for r in reporter.drifts] == [[]]
    before = len(runner.started)
    for _ in range(5):
        assert not the_agent.check_drift()
    assert len(runner.started) == before
    sh(netns, "iptables", "-A", "OUTPUT", "-d", "203.0.113.9", "-j", "DROP")  # after ours: fine
    assert not the_agent.check_drift()
    assert len(runner.started) > before  # the generation moved: the rules were read
    assert len(reporter.drifts) == 1


def test_a_foreign_nftables_table_hooking_beside_ours_is_reported_and_left_alone(
    agent, netns
) -> None:
    the_agent, reporter, _ = agent
    sh(netns, "nft", "add", "table", "inet", "other")
    sh(netns, "nft", "add", "chain", "inet", "other", "early",
       "{ type filter hook prerouting priority -350; policy accept; }")  # fmt: skip
    sh(netns, "nft", "add", "rule", "inet", "other", "early", "notrack")
    sh(netns, "nft", "add", "chain", "inet", "other", "late",
       "{ type filter hook forward priority 0; policy drop; }")  # fmt: skip
    the_agent.check_drift()
    alerts = reporter.drifts[-1]["alerts"]
    early = "nftables table inet other (not iptables'): base chain early at hook prerouting"
    assert any(early in a and "untracks packets" in a for a in alerts), alerts
    late = "base chain late at hook forward"
    assert any(late in a and "drops what its rules do not accept" in a for a in alerts), alerts
    assert "table inet other" in sh(netns, "nft", "list", "tables")  # not ours to remove
    sh(netns, "nft", "delete", "table", "inet", "other")
    the_agent.check_drift()
    assert reporter.drifts[-1]["alerts"] == []


def test_reads_are_spaced_when_the_generation_keeps_moving_but_a_sysctl_never_waits(
    agent, netns
) -> None:
    the_agent, reporter, _ = agent
    watch = the_agent.drift_watch
    watch.read_share = 0.001  # a read may take 0.1 % of the time: the next one waits long
    assert not the_agent.check_drift(force=True)
    sh(netns, "iptables", "-I", "FORWARD", "1", "-j", "ACCEPT")
    assert not the_agent.check_drift()  # deferred: only the generation moved, just after a read
    sh(netns, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0")
    assert the_agent.check_drift()  # a sysctl moved: read now, and the bypass with it
    said = " ".join(reporter.drifts[-1]["words"])
    assert "bridge-nf-call-iptables is 0" in said and "`-j ACCEPT` is ahead" in said
