"""HostFirewall against the real iptables-restore / ipset in a scratch namespace, with
hand-written restore text (independent of the compiler)."""

from __future__ import annotations

import sys

import pytest

from sgweb.kernel.apply import HostFirewall, IpsetPlan, PlainDelta
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import PROBE_SCRIPT

pytestmark = pytest.mark.kernel

P = "neutron-openvswi"
SET = "IPv4sgwebtestgroup0000"

V4_STATE = f"""*filter
:neutron-filter-top - [0:0]
:{P}-OUTPUT - [0:0]
:{P}-otest - [0:0]
-A OUTPUT -j neutron-filter-top
-A OUTPUT -j {P}-OUTPUT
-A {P}-OUTPUT -d 192.0.2.0/24 -j {P}-otest
-A {P}-otest -m state --state RELATED,ESTABLISHED -j RETURN
-A {P}-otest -p icmp -m set --match-set {SET} dst -j RETURN
-A {P}-otest -j DROP
COMMIT
"""
V6_STATE = f"""*filter
:{P}-otest - [0:0]
-A {P}-otest -p ipv6-icmp -j RETURN
COMMIT
"""
IPSETS = f"create {SET} hash:ip family inet hashsize 1024 maxelem 65536\nadd {SET} 192.0.2.1\n"


def _local_addresses(runner: SubprocessRunner, netns: str) -> None:
    # No dummy driver in this kernel: the namespace's own loopback carries the test addresses.
    runner.run(["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"], netns=netns)
    runner.run(["ip", "addr", "add", "192.0.2.2/32", "dev", "lo"], netns=netns)


@pytest.fixture
def firewall(kernel_runner: SubprocessRunner, scratch_netns: str) -> HostFirewall:
    _local_addresses(kernel_runner, scratch_netns)
    firewall = HostFirewall(kernel_runner, scratch_netns)
    report = firewall.apply(
        PlainDelta(ipsets=IpsetPlan(prepare=IPSETS), iptables=((4, V4_STATE), (6, V6_STATE)))
    )
    report.raise_for_error()
    return firewall


def _local_ping(runner: SubprocessRunner, netns: str, address: str) -> bool:
    result = runner.run(
        [sys.executable, "-I", PROBE_SCRIPT, "icmp", address, "--timeout", "0.3"],
        netns=netns,
        check=False,
    )
    return result.returncode == 0


def test_a_full_apply_puts_our_chains_and_sets_in_and_saves_back_only_ours(
    firewall: HostFirewall, kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    kernel_runner.run(["iptables", "-N", "someone-else"], netns=scratch_netns)
    saved = firewall.save(4, tables=("filter",))
    assert "someone-else" not in saved
    assert f"-A {P}-otest -p icmp -m set --match-set {SET} dst -j RETURN" in saved
    assert "-A OUTPUT -j neutron-filter-top" in saved
    assert firewall.save_ipsets().startswith(f"create {SET} hash:ip family inet")
    assert f"add {SET} 192.0.2.1" in firewall.save_ipsets()


def test_counters_follow_real_packets_rule_by_rule(
    firewall: HostFirewall, kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    assert _local_ping(kernel_runner, scratch_netns, "192.0.2.1")  # in the set
    assert not _local_ping(kernel_runner, scratch_netns, "192.0.2.2")  # not: dropped
    counters = firewall.read_chain(f"{P}-otest")
    # request to .1 returned by the set rule, its reply counted as established, .2 dropped
    assert [c.packets for c in counters] == [1, 1, 1]
    by_save = firewall.read_counters(4, tables=("filter",), owned_only=True)
    assert [c.packets for c in by_save[("filter", f"{P}-otest")]] == [1, 1, 1]
    assert ("filter", "OUTPUT") not in by_save


def test_a_kernel_rejected_line_leaves_the_previous_rules_in_force_and_is_quoted(
    firewall: HostFirewall,
) -> None:
    before = firewall.save(4) + firewall.save(6)
    bad_line = f"-A {P}-otest -m set --match-set no-such-set dst -j RETURN"
    tampered = f"*filter\n:{P}-otest - [0:0]\n-A {P}-otest -j ACCEPT\n{bad_line}\nCOMMIT\n"
    report = firewall.apply(PlainDelta(iptables=((4, tampered),)))
    assert not report.ok
    assert report.failed_step == "iptables.4"
    assert (report.offending_line_number, report.offending_line) == (4, bad_line)
    assert "no-such-set" in (report.error or "")
    assert firewall.save(4) + firewall.save(6) == before


@pytest.mark.parametrize("with_rollback_delta", [True, False])
def test_when_ipv6_is_refused_after_ipv4_went_in_ipv4_is_put_back(
    firewall: HostFirewall, with_rollback_delta: bool
) -> None:
    before = firewall.save(4) + firewall.save(6)
    new_v4 = f"*filter\n:{P}-otest - [0:0]\n-A {P}-otest -j ACCEPT\nCOMMIT\n"
    bad_v6 = f"*filter\n:{P}-otest - [0:0]\n-A {P}-otest -s 2001:db8::/129 -j ACCEPT\nCOMMIT\n"
    old_v4 = V4_STATE.split(f":{P}-otest - [0:0]\n")[1]
    rollback = PlainDelta(
        iptables=(
            (
                4,
                f"*filter\n:{P}-otest - [0:0]\n"
                + old_v4.split("COMMIT")[0].split(f"-A {P}-OUTPUT -d 192.0.2.0/24 -j {P}-otest\n")[
                    -1
                ]
                + "COMMIT\n",
            ),
        )
    )
    report = firewall.apply(
        PlainDelta(iptables=((4, new_v4), (6, bad_v6))),
        rollback=rollback if with_rollback_delta else None,
    )
    assert not report.ok and report.rolled_back
    assert report.offending_line == f"-A {P}-otest -s 2001:db8::/129 -j ACCEPT"
    assert firewall.save(4) + firewall.save(6) == before


def test_sets_are_built_aside_and_swapped_in_and_an_abort_drops_the_new_one(
    firewall: HostFirewall,
) -> None:
    plan = IpsetPlan(
        prepare=f"create {SET}-n hash:ip family inet hashsize 1024 maxelem 65536\n"
        f"add {SET}-n 192.0.2.2\n",
        commit=f"swap {SET}-n {SET}\n",
        cleanup=f"destroy {SET}-n\n",
        abort=f"destroy {SET}-n\n",
    )
    assert firewall.apply(PlainDelta(ipsets=plan)).ok
    assert f"add {SET} 192.0.2.2" in firewall.save_ipsets()
    assert f"add {SET} 192.0.2.1" not in firewall.save_ipsets()
    assert firewall.ipset_names() == [SET]

    refused = PlainDelta(
        ipsets=plan, iptables=((4, f"*filter\n-A {P}-otest -j no-such-chain\nCOMMIT\n"),)
    )
    report = firewall.apply(refused)
    assert not report.ok
    assert firewall.ipset_names() == [SET]
    assert f"add {SET} 192.0.2.2" in firewall.save_ipsets()


def test_conntrack_entries_of_an_address_can_be_flushed(
    firewall: HostFirewall, kernel_runner: SubprocessRunner, scratch_netns: str
) -> None:
    assert _local_ping(kernel_runner, scratch_netns, "192.0.2.1")
    listed = kernel_runner.run(["conntrack", "-L"], netns=scratch_netns, check=False)
    assert "192.0.2.1" in listed.stdout
    assert firewall.flush_conntrack(["192.0.2.1"]) >= 1
    listed = kernel_runner.run(["conntrack", "-L"], netns=scratch_netns, check=False)
    assert "192.0.2.1" not in listed.stdout
    assert firewall.flush_conntrack(["192.0.2.1"]) == 0
