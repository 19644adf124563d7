"""What decides our traffic besides our chains, read from `iptables-save` text (pure, no kernel)."""

from __future__ import annotations

from sgweb.firewall.compiler import compile_host
from tests.agents.fakes import SSH, state
from worker import bypass

COMPILED = compile_host(state(web_rules=(SSH,)))


def saved(forward: list[str], policy: str = "ACCEPT") -> str:
    lines = ["*filter", ":INPUT ACCEPT [0:0]", f":FORWARD {policy} [0:0]", ":OUTPUT ACCEPT [0:0]",
             "-A INPUT -j neutron-openvswi-INPUT"]  # fmt: skip
    lines += [f"-A FORWARD {spec}" for spec in forward]
    lines += ["-A OUTPUT -j neutron-filter-top", "-A OUTPUT -j neutron-openvswi-OUTPUT", "COMMIT"]
    return "\n".join(lines) + "\n"


OURS = ["-j neutron-filter-top", "-j neutron-openvswi-FORWARD"]


def test_our_jumps_first_with_other_rules_behind_them_is_no_finding() -> None:
    text = saved([*OURS, "-s 203.0.113.9/32 -j DROP", "-j ACCEPT"])
    assert bypass.builtin_findings(COMPILED, 4, text, {}) == []


def test_a_rule_between_our_two_jumps_is_ahead_of_one_of_them() -> None:
    text = saved([OURS[0], "-i eth0 -j ACCEPT", OURS[1]])
    kinds = [(f.kind, f.action) for f in bypass.builtin_findings(COMPILED, 4, text, {})]
    assert kinds == [(bypass.FOREIGN_AHEAD, bypass.ALERT), (bypass.JUMP_ORDER, bypass.REPAIR)]


def test_a_running_traces_own_trace_rule_ahead_of_our_jumps_is_ours() -> None:
    marker = '-p tcp -m comment --comment "sgweb-trace-0a1b2c3d" -j TRACE'
    text = saved([marker, *OURS])
    assert bypass.builtin_findings(COMPILED, 4, text, {}) == []
    # Someone else's TRACE rule is still foreign.
    foreign = saved(["-p tcp -j TRACE", *OURS])
    assert bypass.builtin_findings(COMPILED, 4, foreign, {})


def test_our_jumps_swapped_or_doubled_are_put_back_in_order() -> None:
    for forward in ([OURS[1], OURS[0]], [*OURS, OURS[0]]):
        (finding,) = bypass.builtin_findings(COMPILED, 4, saved(forward), {})
        assert finding.kind == bypass.JUMP_ORDER and "put back first" in finding.words


def test_each_kind_of_foreign_rule_is_said_in_its_own_words() -> None:
    assert "a bypass" in bypass.effect("filter", "-j ACCEPT")
    assert "skip every security group" in bypass.effect("filter", "-p tcp -j RETURN")
    assert "drops matching packets" in bypass.effect("filter", "-s 192.0.2.9/32 -j DROP")
    assert "rejects" in bypass.effect("filter", "-j REJECT --reject-with icmp-port-unreachable")
    assert "chain custom first" in bypass.effect("filter", "-j custom")
    assert "only counts" in bypass.effect("filter", "-s 192.0.2.9/32")
    assert "untracked" in bypass.effect("raw", "-j CT --notrack")
    assert "before our conntrack zones" in bypass.effect("raw", "-j ACCEPT")


def test_a_policy_is_compared_with_the_one_found_first() -> None:
    baseline: dict[tuple[int, str, str], str] = {}
    assert bypass.builtin_findings(COMPILED, 4, saved(OURS), baseline) == []
    assert baseline[(4, "filter", "FORWARD")] == "ACCEPT"
    (finding,) = bypass.builtin_findings(COMPILED, 4, saved(OURS, policy="DROP"), baseline)
    assert finding.kind == bypass.POLICY and finding.action == bypass.ALERT
    assert finding.words == (
        "IPv4 filter FORWARD: policy changed from ACCEPT to DROP; packets no rule decides are "
        "now dropped."
    )


def test_bridge_sysctls_off_are_repaired_and_missing_ones_alerted() -> None:
    findings = bypass.sysctl_findings(
        {"net.bridge.bridge-nf-call-iptables": 0, "net.bridge.bridge-nf-call-ip6tables": None}
    )
    assert [(f.kind, f.action, f.family) for f in findings] == [
        (bypass.SYSCTL_MISSING, bypass.ALERT, 6),
        (bypass.SYSCTL_OFF, bypass.REPAIR, 4),
    ]
    assert bypass.sysctl_findings({"net.bridge.bridge-nf-call-iptables": 1}) == []
