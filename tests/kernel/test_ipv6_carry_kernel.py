"""IPv6 counters survive a full apply on a host shaped like a real one (issue 12).

ip6tables-nft 1.8.9 ignores the counts given to `ip6tables-restore -c`, so the full apply
writes them back over netlink (`sgweb.kernel.nftcarry`): every rule with a count replaced on its
handle, one nf_tables batch. What the small labs of `test_counter_survival` lack and every real
host has: ICMPv6-type rules (`-m icmp6`, neighbour discovery in every port chain) and port
ranges (`-m multiport`) that real packets hit, whose xt matches nf_tables checks against the
rule's protocol on replace, and enough rules with counts that the batch outgrows the socket's
default send buffer. Either made the whole write-back fail and every IPv6 counter restart at 0.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sgweb.firewall.incremental import diff
from sgweb.firewall.model import INGRESS, IPV6, HostState, SecurityGroupRule
from sgweb.kernel import nftcarry
from sgweb.kernel.apply import ApplyReport
from sgweb.kernel.carry import Carried, delta_with_counters, read_carry
from sgweb.kernel.readback import Counter, save_command
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import SHARED_BRIDGE, remove_namespaces
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.test_firewall_e2e import PORTS, WEB_GROUP, WEB_PORT, state
from worker import full_apply

pytestmark = pytest.mark.kernel

ECHO6 = SecurityGroupRule("web-echo6", INGRESS, IPV6, "ipv6-icmp", 128)  # -m icmp6 --icmpv6-type
ALT6 = SecurityGroupRule("web-alt6", INGRESS, IPV6, "tcp", 8080, 8090)  # -m multiport --dports
# Port ranges from one source each: xt multiport rules with counts, a few hundred bytes apiece.
BULK = tuple(
    SecurityGroupRule(f"web-bulk-{i}", INGRESS, IPV6, "tcp", 2200, 2210,
                      remote_ip_prefix=f"2001:db8:2::{i:x}/128")
    for i in range(1, 801)
)  # fmt: skip


def with_rules(base: HostState, *rules: SecurityGroupRule) -> HostState:
    group = replace(WEB_GROUP, rules=(*rules, *WEB_GROUP.rules))  # before web-icmp6's catch-all
    groups = tuple(group if g.id == group.id else g for g in base.security_groups)
    return replace(base, security_groups=groups)


def _lab(runner: SubprocessRunner, *rules: SecurityGroupRule) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(runner, prefix, PORTS, SHARED_BRIDGE)
        lab.apply_fresh(with_rules(state(), *rules))
        lab.settle()
        yield lab
    finally:
        remove_namespaces(prefix, runner)


@pytest.fixture
def lab(kernel_runner: SubprocessRunner) -> Iterator[FirewallLab]:
    yield from _lab(kernel_runner, ECHO6, ALT6)


@pytest.fixture
def big_lab(kernel_runner: SubprocessRunner) -> Iterator[FirewallLab]:
    yield from _lab(kernel_runner, *BULK)


def ipv6_rules(lab: FirewallLab) -> list[tuple[str, Counter]]:
    """Every IPv6 filter rule, in order, with its count (`ip6tables-save -c`)."""
    saved = lab.runner.run([save_command(6), "-c", "-t", "filter"], netns=lab.host_ns).stdout
    out = []
    for line in saved.splitlines():
        if line.startswith("["):
            counts, rule = line.split(" ", 1)
            packets, size = counts.strip("[]").split(":")
            out.append((rule, Counter(int(packets), int(size))))
    return out


def counted(rules: list[tuple[str, Counter]], text: str) -> int:
    return sum(counter.packets for rule, counter in rules if text in rule)


def forget_neighbours(lab: FirewallLab) -> None:
    """The next ping starts with neighbour discovery, through the ports' ICMPv6-type rules (the
    lab's endpoints know each other's MACs up front, so probes move only their own counters)."""
    for label, neighbour in (
        ("outside", "2001:db8::11"),
        (lab.label(WEB_PORT.id), "2001:db8:1::7"),
    ):
        lab.runner.run(
            ["ip", "-6", "neigh", "del", neighbour, "dev", "eth0"], netns=lab.topology.ns(label)
        )


def full_reapply(lab: FirewallLab, carried: dict[int, Carried]) -> ApplyReport:
    compiled = lab.compiled
    assert compiled is not None
    delta = delta_with_counters(full_apply.with_existing_sets(diff(None, compiled)), carried)
    return full_apply.apply_full(lab.firewall, compiled, delta, carried)


@pytest.mark.parametrize("whole_tables", [True, False], ids=["whole-tables", "noflush"])
def test_icmpv6_type_and_port_range_rules_hit_by_real_packets_keep_their_counts(
    lab: FirewallLab, whole_tables: bool
) -> None:
    forget_neighbours(lab)
    for _ in range(3):
        assert lab.ping("outside", WEB_PORT.id, family=6).kernel_ok
    assert lab.tcp("outside", WEB_PORT.id, 8085, family=6).kernel_ok
    before = ipv6_rules(lab)
    assert counted(before, "sg-rule web-echo6") >= 3  # ECHO6, by the echo requests
    assert counted(before, "--icmpv6-type 135 -j RETURN") >= 1  # neighbour solicitations
    assert counted(before, "-m multiport --dports 8080:8090") >= 1  # ALT6, by the SYN
    if not whole_tables:  # someone else's chain: the apply must leave the tables shared
        lab.runner.run(["ip6tables", "-w", "-N", "sgweb-test-foreign"], netns=lab.host_ns)
    assert full_apply.owns_tables_alone(lab.firewall, 6) is whole_tables
    report = full_reapply(lab, {family: read_carry(lab.firewall, family) for family in (4, 6)})
    assert report.ok, report.error
    assert not report.warnings
    assert ipv6_rules(lab) == before
    # The replaced rules still match: the next echo request is counted on top.
    assert lab.ping("outside", WEB_PORT.id, family=6).kernel_ok
    assert counted(ipv6_rules(lab), "sg-rule web-echo6") == counted(before, "sg-rule web-echo6") + 1


def test_without_its_compat_protocol_an_icmpv6_type_rule_is_refused_on_replace(
    lab: FirewallLab,
) -> None:
    """The control: the kernel does check what the write-back now sends."""
    chain = next(c.name for c in lab.compiled.family(6).table("filter").chains  # type: ignore[union-attr]
                 if any(r.match.icmp_type == 128 for r in c.rules))  # fmt: skip
    writer = nftcarry.CounterWriter(lab.host_ns)
    with writer._socket() as sock:
        dumped = writer._dump(sock, 6, "filter", chain)
        icmp6 = [rule for rule in dumped if nftcarry.rule_protocol(rule) == (58, False)]
        assert icmp6
        as_dumped = [nftcarry.for_replace(rule)[: -len(nftcarry.compat(58, False))]
                     for rule in icmp6]  # fmt: skip
        with pytest.raises(OSError) as refused:
            writer._replace(sock, 6, as_dumped)
        assert refused.value.errno == errno.EINVAL
    with writer._socket() as sock:  # the refusals of the other rules are still queued on that one
        writer._replace(sock, 6, [nftcarry.for_replace(rule) for rule in icmp6])


def bulk_counts(lab: FirewallLab) -> dict[int, Carried]:
    """The counts the bulk rules would have after traffic from 800 sources: each its own."""
    carried = {family: read_carry(lab.firewall, family) for family in (4, 6)}
    rules = ipv6_rules(lab)
    chain = next(rule.split(" ")[1] for rule, _ in rules if "2001:db8:2::1/128" in rule)
    by_text = carried[6].setdefault(("filter", chain), {})
    for number, (rule, _) in enumerate(r for r in rules if "2001:db8:2::" in r[0]):
        by_text[rule.lower()] = [Counter(number + 1, (number + 1) * 80)]
    return carried


def test_a_write_back_bigger_than_the_default_send_buffer_goes_in_as_one_batch(
    big_lab: FirewallLab,
) -> None:
    carried = bulk_counts(big_lab)
    report = full_reapply(big_lab, carried)
    assert report.ok, report.error
    assert not report.warnings
    after = ipv6_rules(big_lab)
    bulk = [counter for rule, counter in after if "2001:db8:2::" in rule]
    assert bulk == [Counter(n, n * 80) for n in range(1, len(BULK) + 1)]
    # ... and the batch was bigger than what a netlink socket takes by default
    writer = nftcarry.CounterWriter(big_lab.host_ns)
    with writer._socket() as sock:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        chain = next(rule.split(" ")[1] for rule, _ in after if "2001:db8:2::1/128" in rule)
        size = sum(len(nftcarry.for_replace(r)) for r in writer._dump(sock, 6, "filter", chain))
    assert size > default


def test_without_a_bigger_send_buffer_the_batch_is_refused_whole(
    big_lab: FirewallLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: netlink refuses the batch (EMSGSIZE), and no rule changed (one transaction)."""
    monkeypatch.setattr(nftcarry, "_fit_send_buffer", lambda sock, size: None)
    report = full_reapply(big_lab, bulk_counts(big_lab))
    assert report.ok, report.error  # the rules went in; their counts did not
    (warning,) = report.warnings
    assert "IPv6 counters were not carried over" in warning and "Message too long" in warning
    assert all(not counter.packets for rule, counter in ipv6_rules(big_lab)
               if "2001:db8:2::" in rule)  # fmt: skip
