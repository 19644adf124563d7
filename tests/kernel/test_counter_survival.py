"""Kernel counters survive changes (issue 12): real pings, a real kernel, real counters.

Pings hit the web group's ICMP rule; then an unrelated rule is added to the same group (an
incremental apply that edits the port's chain in place), or the agent re-applies everything
(start-up, drift repair: a full apply that carries counters over). The ICMP rule's counter must
still include the earlier pings; only a rule that itself changed starts from zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import INGRESS, HostState, SecurityGroupRule
from sgweb.kernel.carry import delta_with_counters, read_carry
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import SHARED_BRIDGE, remove_namespaces
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.test_firewall_e2e import PORTS, WEB_GROUP, WEB_PORT, state
from worker import full_apply

pytestmark = pytest.mark.kernel

ICMP_RULE = "web-icmp"
ICMP6_RULE = "web-icmp6"
UNRELATED = SecurityGroupRule(
    "web-ssh", INGRESS, "IPv4", "tcp", 22, 22, remote_ip_prefix="203.0.113.0/24"
)


@pytest.fixture
def lab(kernel_runner: SubprocessRunner) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, SHARED_BRIDGE)
        lab.apply_fresh(state())
        lab.settle()
        yield lab
    finally:
        remove_namespaces(prefix, kernel_runner)


def rule_packets(lab: FirewallLab, compiled: CompiledHost, rule_id: str, family: int = 4) -> int:
    """Packets the kernel counted for one security group rule, over every chain it is in."""
    total = 0
    table = compiled.family(family).table("filter")
    assert table is not None
    for chain in table.chains:
        positions = [i for i, r in enumerate(chain.rules) if r.origin.rule_id == rule_id]
        if positions:
            counters = lab.firewall.read_chain(chain.name, family)
            assert len(counters) == len(chain.rules), f"{chain.name} is not what was compiled"
            total += sum(counters[i].packets for i in positions)
    return total


def with_unrelated_rule(base: HostState) -> HostState:
    group = replace(WEB_GROUP, rules=(UNRELATED, *WEB_GROUP.rules))  # first: positions shift
    groups = tuple(group if g.id == group.id else g for g in base.security_groups)
    return replace(base, security_groups=groups)


def ping_web(lab: FirewallLab, count: int, family: int = 4) -> None:
    for _ in range(count):
        # lab.ping flushes conntrack first: each echo request is NEW, so the ICMP rule counts it
        assert lab.ping("outside", WEB_PORT.id, family=family).kernel_ok


def test_adding_an_unrelated_rule_keeps_the_counter_of_a_rule_that_carried_pings(
    lab: FirewallLab,
) -> None:
    before = lab.compiled
    assert before is not None
    ping_web(lab, 3)
    hits = rule_packets(lab, before, ICMP_RULE)
    assert hits >= 3
    after = compile_host(lab.with_bridges(with_unrelated_rule(lab.state)))
    lab.firewall.apply(diff(before, after), rollback=diff(after, before)).raise_for_error()
    assert rule_packets(lab, after, ICMP_RULE) == hits
    assert rule_packets(lab, after, UNRELATED.id) == 0
    ping_web(lab, 1)
    assert rule_packets(lab, after, ICMP_RULE) == hits + 1


def test_a_full_reapply_carries_every_counter_over(lab: FirewallLab) -> None:
    """What the agent does at start-up and on drift repair: read, then re-declare with counts."""
    compiled = lab.compiled
    assert compiled is not None
    ping_web(lab, 2)
    hits = rule_packets(lab, compiled, ICMP_RULE)
    assert hits >= 2
    carried = {family: read_carry(lab.firewall, family) for family in (4, 6)}
    delta = delta_with_counters(full_apply.with_existing_sets(diff(None, compiled)), carried)
    lab.firewall.apply(delta).raise_for_error()
    assert rule_packets(lab, compiled, ICMP_RULE) == hits


def test_a_whole_table_reapply_carries_counters_too(lab: FirewallLab) -> None:
    """On a host whose tables hold only ours, the full apply replaces tables whole."""
    compiled = lab.compiled
    assert compiled is not None
    ping_web(lab, 2)
    hits = rule_packets(lab, compiled, ICMP_RULE)
    assert full_apply.owns_tables_alone(lab.firewall, 4)
    carried = {family: read_carry(lab.firewall, family) for family in (4, 6)}
    delta = delta_with_counters(full_apply.with_existing_sets(diff(None, compiled)), carried)
    report = full_apply.apply_full(lab.firewall, compiled, delta, carried)
    assert report.ok, report.error
    assert "iptables.4.tables" in dict(report.steps)
    assert rule_packets(lab, compiled, ICMP_RULE) == hits


def test_without_a_carry_a_full_reapply_would_have_zeroed_the_counter(lab: FirewallLab) -> None:
    """The control: proves the two tests above measure something."""
    compiled = lab.compiled
    assert compiled is not None
    ping_web(lab, 1)
    assert rule_packets(lab, compiled, ICMP_RULE) >= 1
    lab.firewall.apply(full_apply.with_existing_sets(diff(None, compiled))).raise_for_error()
    assert rule_packets(lab, compiled, ICMP_RULE) == 0


@pytest.mark.parametrize("whole_tables", [True, False], ids=["whole-tables", "noflush"])
def test_a_full_reapply_carries_ipv6_counters_over_too(
    lab: FirewallLab, whole_tables: bool
) -> None:
    """ip6tables-restore -c ignores the counts (iptables-nft 1.8.9); the agent's full apply
    writes them back over netlink, whether it replaces whole tables or adds to shared ones."""
    compiled = lab.compiled
    assert compiled is not None
    ping_web(lab, 2, family=6)
    hits = rule_packets(lab, compiled, ICMP6_RULE, family=6)
    assert hits >= 2
    if not whole_tables:  # someone else's chain: the apply must leave the tables shared
        lab.runner.run(["ip6tables", "-w", "-N", "sgweb-test-foreign"], netns=lab.host_ns)
    assert full_apply.owns_tables_alone(lab.firewall, 6) is whole_tables
    carried = {family: read_carry(lab.firewall, family) for family in (4, 6)}
    delta = delta_with_counters(full_apply.with_existing_sets(diff(None, compiled)), carried)
    report = full_apply.apply_full(lab.firewall, compiled, delta, carried)
    assert report.ok, report.error
    assert not report.warnings
    assert rule_packets(lab, compiled, ICMP6_RULE, family=6) == hits
    ping_web(lab, 1, family=6)
    assert rule_packets(lab, compiled, ICMP6_RULE, family=6) == hits + 1
