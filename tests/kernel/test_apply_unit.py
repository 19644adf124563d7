"""HostFirewall against a FakeRunner: which commands run, in which order, and what a failure does.

No kernel needed (no `kernel` marker): these pin the apply protocol itself.
"""

from __future__ import annotations

from sgweb.kernel.apply import Counter, HostFirewall, IpsetPlan, PlainDelta, offending_line
from tests.fakerunner import FakeRunner

V4 = "*filter\n:neutron-openvswi-iabc - [0:0]\n-A neutron-openvswi-iabc -j RETURN\nCOMMIT\n"
V6 = "*filter\n:neutron-openvswi-iabc - [0:0]\n-A neutron-openvswi-iabc -j DROP\nCOMMIT\n"
PLAN = IpsetPlan(prepare="create new hash:ip\n", commit="swap new old\n", cleanup="destroy x\n",
                 abort="destroy new\n")  # fmt: skip
DELTA = PlainDelta(ipsets=PLAN, iptables=((4, V4), (6, V6)))
ROLLBACK = PlainDelta(iptables=((4, "*filter\n:neutron-openvswi-iabc - [0:0]\nCOMMIT\n"),))


def test_a_delta_is_applied_as_prepare_then_each_family_then_commit_then_cleanup() -> None:
    runner = FakeRunner()
    report = HostFirewall(runner, "ns1").apply(DELTA, rollback=ROLLBACK)
    assert report.ok
    assert [(call.argv, call.input) for call in runner.calls] == [
        (("ipset", "restore"), PLAN.prepare),
        (("iptables-restore", "--noflush"), V4),
        (("ip6tables-restore", "--noflush"), V6),
        (("ipset", "restore"), PLAN.commit),
        (("ipset", "restore"), PLAN.cleanup),
    ]
    assert {call.netns for call in runner.calls} == {"ns1"}
    assert report.rule_lines == {4: 1, 6: 1}
    assert [name for name, _ in report.steps] == [
        "ipsets.prepare", "iptables.4", "iptables.6", "ipsets.commit", "ipsets.cleanup",
    ]  # fmt: skip


def test_a_membership_only_delta_runs_no_iptables_restore() -> None:
    runner = FakeRunner()
    HostFirewall(runner).apply(PlainDelta(ipsets=PLAN, iptables=((4, ""), (6, ""))))
    assert all(call.argv[0] == "ipset" for call in runner.calls)


def test_a_failed_prepare_aborts_the_sets_and_touches_no_rules() -> None:
    runner = FakeRunner()
    runner.on(["ipset", "restore"], returncode=1, stderr="ipset v7.17: Error in line 1: boom")
    report = HostFirewall(runner).apply(DELTA)
    assert not report.ok
    assert report.failed_step == "ipsets.prepare"
    assert report.offending_line == "create new hash:ip"
    assert [call.input for call in runner.calls] == [PLAN.prepare, PLAN.abort]


def test_when_ipv6_fails_after_ipv4_went_in_ipv4_is_rolled_back_and_sets_aborted() -> None:
    runner = FakeRunner()
    runner.on(
        ["ip6tables-restore"],
        returncode=2,
        stderr="ip6tables-restore v1.8.9 (nf_tables): bad\nError occurred at line: 3\n",
    )
    report = HostFirewall(runner).apply(DELTA, rollback=ROLLBACK)
    assert not report.ok and report.rolled_back
    assert report.failed_step == "iptables.6"
    assert (report.offending_line_number, report.offending_line) == (
        3, "-A neutron-openvswi-iabc -j DROP",
    )  # fmt: skip
    assert [(call.argv[0], call.input) for call in runner.calls][-2:] == [
        ("iptables-restore", ROLLBACK.iptables[0][1]),
        ("ipset", PLAN.abort),
    ]
    assert "ipsets.commit" not in [name for name, _ in report.steps]


def test_without_a_rollback_delta_the_tables_are_saved_first_and_restored_whole() -> None:
    runner = FakeRunner()
    runner.on(["iptables-save", "-t", "filter"], stdout="*filter\nSAVED\nCOMMIT\n")
    runner.on(["ip6tables-restore"], returncode=1, stderr="line 2 failed")
    report = HostFirewall(runner).apply(DELTA)
    assert report.rolled_back
    restores = [call for call in runner.calls if call.argv[0] == "iptables-restore"]
    assert restores[-1].argv == ("iptables-restore", "-T", "filter")
    assert restores[-1].input == "*filter\nSAVED\nCOMMIT\n"


def test_the_kernels_error_line_is_found_in_both_message_formats() -> None:
    text = "a\nb\nc\n"
    assert offending_line("Error occurred at line: 2\n", text) == (2, "b")
    assert offending_line("iptables-restore: line 3 failed: No chain", text) == (3, "c")
    assert offending_line("nothing useful", text) == (0, "")


def test_counters_are_read_by_position_from_the_listing() -> None:
    runner = FakeRunner()
    runner.on(
        ["iptables", "-w", "-t", "filter", "-L"],
        stdout=(
            "Chain neutron-openvswi-iabc (1 references)\n"
            "    pkts      bytes target     prot opt in     out     source   destination\n"
            "       3      252 RETURN     all  --  *      *       0.0.0.0/0  0.0.0.0/0\n"
            "       0        0 DROP       all  --  *      *       0.0.0.0/0  0.0.0.0/0\n"
        ),
    )
    counters = HostFirewall(runner).read_chain("neutron-openvswi-iabc")
    assert [(c.packets, c.bytes) for c in counters] == [(3, 252), (0, 0)]


def test_save_keeps_only_our_chains_and_the_jumps_into_them() -> None:
    runner = FakeRunner()
    runner.on(
        ["iptables-save", "-t", "filter"],
        stdout=(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [5:300]\n:other - [0:0]\n"
            ":neutron-filter-top - [0:0]\n:neutron-openvswi-FORWARD - [2:3]\n"
            "-A FORWARD -j neutron-filter-top\n-A FORWARD -j other\n"
            "-A neutron-openvswi-FORWARD -j ACCEPT\n-A other -j DROP\nCOMMIT\n"
        ),
    )
    saved = HostFirewall(runner).save(4, tables=("filter",))
    assert saved == (
        "*filter\n:neutron-filter-top - [0:0]\n:neutron-openvswi-FORWARD - [0:0]\n"
        "-A FORWARD -j neutron-filter-top\n-A neutron-openvswi-FORWARD -j ACCEPT\nCOMMIT\n"
    )


def test_a_report_separates_kernel_time_from_the_rest() -> None:
    report = HostFirewall(FakeRunner()).apply(DELTA, rollback=ROLLBACK)
    assert 0 <= report.kernel_s <= report.duration_s


def test_a_vanished_chain_reads_as_empty_among_the_watched_ones() -> None:
    runner = FakeRunner()
    runner.on(["iptables", "-w", "-t", "filter", "-L", "gone"], returncode=1, stderr="No chain")
    runner.on(
        ["iptables", "-w", "-t", "filter", "-L", "here"],
        stdout=(
            "Chain here (1 references)\n"
            "    pkts      bytes target     prot opt in     out     source   destination\n"
            "       7      588 RETURN     all  --  *      *       0.0.0.0/0  0.0.0.0/0\n"
        ),
    )
    counters = HostFirewall(runner).read_chains(["gone", "here"])
    assert counters == {"gone": [], "here": [Counter(7, 588)]}
