"""The compiled firewall in a real kernel: real packets, and the tracer must agree with the kernel.

One host namespace per shape (a shared bridge, and Neutron's qbr bridge per port), VMs as
namespaces behind tap devices named as the compiler names them, and outside endpoints on the
fabric. Each probe is one packet (plus its reply); the tracer's verdict must equal the kernel's
and the rules it says matched must be exactly the rules whose counters went up.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sgweb.firewall.model import (
    EGRESS,
    INGRESS,
    IPV4,
    IPV6,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, remove_namespaces
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab

pytestmark = pytest.mark.kernel

WEB = "a0a0a0a0-1111-4111-8111-000000000001"
DB = "b0b0b0b0-2222-4222-8222-000000000002"

WEB_PORT = Port(
    id="11111111-aaaa-4aaa-8aaa-000000000011",
    mac_address="fa:16:3e:00:00:11",
    fixed_ips=("192.0.2.11", "2001:db8::11"),
    security_groups=(WEB,),
    dhcp_servers=("192.0.2.2",),
)
DB_PORT = Port(
    id="22222222-bbbb-4bbb-8bbb-000000000012",
    mac_address="fa:16:3e:00:00:12",
    fixed_ips=("192.0.2.12", "2001:db8::12"),
    security_groups=(DB,),
    dhcp_servers=("192.0.2.2",),
)
BARE_PORT = Port(  # no security group: only the base rules
    id="33333333-cccc-4ccc-8ccc-000000000013",
    mac_address="fa:16:3e:00:00:13",
    fixed_ips=("192.0.2.13", "2001:db8::13"),
    dhcp_servers=("192.0.2.2",),
)
OPEN_PORT = Port(  # port security disabled: not filtered at all
    id="44444444-dddd-4ddd-8ddd-000000000014",
    mac_address="fa:16:3e:00:00:14",
    fixed_ips=("192.0.2.14", "2001:db8::14"),
    security_groups=(WEB,),
    port_security_enabled=False,
)
PORTS = (WEB_PORT, DB_PORT, BARE_PORT, OPEN_PORT)


def rule(
    rule_id: str, direction: str, ethertype: str = IPV4, **fields: object
) -> SecurityGroupRule:
    return SecurityGroupRule(id=rule_id, direction=direction, ethertype=ethertype, **fields)  # type: ignore[arg-type]


WEB_GROUP = SecurityGroup(
    WEB,
    "web",
    rules=(
        rule("web-http", INGRESS, protocol="tcp", port_range_min=80, port_range_max=80,
             remote_ip_prefix="198.51.100.0/24"),
        rule("web-alt", INGRESS, protocol="tcp", port_range_min=8080, port_range_max=8090),
        rule("web-icmp", INGRESS, protocol="icmp"),
        rule("web-icmp6", INGRESS, IPV6, protocol="ipv6-icmp"),
        rule("web-dns", INGRESS, protocol="udp", port_range_min=5353, port_range_max=5353,
             remote_ip_prefix="198.51.100.7/32"),
        rule("web-to-db", EGRESS, protocol="tcp", port_range_min=5432, port_range_max=5432,
             remote_group_id=DB),
        rule("web-udp-out", EGRESS, protocol="udp", remote_ip_prefix="203.0.113.0/24"),
    ),
)  # fmt: skip
DB_GROUP = SecurityGroup(
    DB,
    "db",
    rules=(
        rule("db-pg", INGRESS, protocol="tcp", port_range_min=5432, port_range_max=5432,
             remote_group_id=WEB),
        rule("db-icmp", INGRESS, protocol="icmp", remote_group_id=WEB),
        rule("db-out", EGRESS),
        rule("db-out6", EGRESS, IPV6),
    ),
)  # fmt: skip


def state(*, enable_ipset: bool = True) -> HostState:
    return HostState(
        ports=PORTS,
        security_groups=(WEB_GROUP, DB_GROUP),
        remote_group_members=(
            (WEB, (*WEB_PORT.fixed_ips, *OPEN_PORT.fixed_ips)),
            (DB, DB_PORT.fixed_ips),
        ),
        enable_ipset=enable_ipset,
    )


@pytest.fixture(scope="module", params=[SHARED_BRIDGE, BRIDGE_PER_PORT])
def lab(kernel_runner: SubprocessRunner, request: pytest.FixtureRequest) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, request.param)
        lab.apply_fresh(state())
        lab.settle()
        yield lab
    finally:
        remove_namespaces(prefix, kernel_runner)


W, D, B, OPEN = WEB_PORT.id, DB_PORT.id, BARE_PORT.id, OPEN_PORT.id


@pytest.mark.parametrize(
    ("source", "destination", "family", "allowed"),
    [
        ("outside", W, 4, True),  # ingress icmp from anywhere; the reply is established
        ("outside", W, 6, True),
        (W, "outside", 4, False),  # no egress icmp rule for web
        (D, W, 4, True),  # db may send anything, web takes icmp from anywhere
        (W, D, 4, False),  # web's egress allows only tcp/5432 to db
        ("outside", D, 4, False),  # db takes icmp from web members only (ipset)
        (OPEN, D, 4, True),  # the open port's address is a web member
        ("outside", D, 6, False),
        (D, "outside", 6, True),
        ("outside", B, 4, False),  # no group: nothing comes in
        (B, "outside", 4, False),  # ... and nothing goes out
        ("outside", OPEN, 4, True),  # port security off: unfiltered both ways
        (OPEN, "outside", 6, True),
    ],
)
def test_pings_are_allowed_or_dropped_as_the_tracer_says(
    lab: FirewallLab, source: str, destination: str, family: int, allowed: bool
) -> None:
    lab.ping(source, destination, family=family).assert_agrees(allowed)


@pytest.mark.parametrize(
    ("source", "destination", "port", "family", "allowed"),
    [
        ("outside", W, 80, 4, True),  # from 198.51.100.0/24
        ("other", W, 80, 4, False),  # 203.0.113.9 is not in it
        ("other", W, 8085, 4, True),  # multiport range, any source
        ("other", W, 8091, 4, False),
        ("outside", W, 8080, 6, False),  # the range is an IPv4 rule
        (W, D, 5432, 4, True),  # web egress to the db group, db ingress from web (ipset)
        (W, D, 5433, 4, False),
        (D, W, 80, 4, False),  # db is not in 198.51.100.0/24
    ],
)
def test_tcp_connections_follow_port_ranges_cidrs_and_remote_groups(
    lab: FirewallLab, source: str, destination: str, port: int, family: int, allowed: bool
) -> None:
    lab.tcp(source, destination, port, family=family).assert_agrees(allowed)


@pytest.mark.parametrize(
    ("source", "destination", "port", "sport", "allowed"),
    [
        ("outside", W, 5353, 40000, True),  # udp/5353 from 198.51.100.7/32
        ("other", W, 5353, 40000, False),
        (W, "other", 9999, 40000, True),  # egress udp to 203.0.113.0/24
        (W, "outside", 9999, 40000, False),
        (B, "dhcp", 67, 68, True),  # a DHCP request goes out even without groups
        (B, "outside", 68, 67, False),  # the VM may not act as a DHCP server
        ("dhcp", B, 68, 67, True),  # the subnet's DHCP server may answer
        ("outside", B, 68, 67, False),  # ... nobody else
    ],
)
def test_udp_and_dhcp_rules_hold(
    lab: FirewallLab, source: str, destination: str, port: int, sport: int, allowed: bool
) -> None:
    lab.udp(source, destination, port, sport=sport).assert_agrees(allowed)


@pytest.mark.parametrize(
    ("source", "destination", "port", "sport", "allowed"),
    [
        (B, "dhcp", 547, 546, True),  # a DHCPv6 request goes out
        (B, "outside", 546, 547, False),  # the VM may not act as a DHCPv6 server
    ],
)
def test_dhcpv6_client_out_and_no_dhcpv6_server_in_a_vm(
    lab: FirewallLab, source: str, destination: str, port: int, sport: int, allowed: bool
) -> None:
    lab.udp(source, destination, port, sport=sport, family=6).assert_agrees(allowed)


def test_a_router_advertisement_from_a_vm_is_dropped_where_the_tracer_says(
    lab: FirewallLab,
) -> None:
    observation = lab.icmp_message(D, "outside", 134)
    observation.assert_agrees(False)
    assert observation.kernel_hits  # the counters prove where it died


def test_a_vm_sending_from_a_forged_address_is_dropped(lab: FirewallLab) -> None:
    vm = lab.label(D)
    lab.topology.run_in(vm, ["ip", "addr", "add", "192.0.2.99/32", "dev", "eth0"])
    try:
        forged = lab.ping(D, "outside", src_address="192.0.2.99")
    finally:
        lab.topology.run_in(vm, ["ip", "addr", "del", "192.0.2.99/32", "dev", "eth0"])
    forged.assert_agrees(False)
    assert forged.flow.hops[0].trace.deciding.rule.chain.endswith("s" + D[:10])  # type: ignore[union-attr]
    lab.ping(D, "outside").assert_agrees(True)


def test_a_vm_sending_from_a_forged_mac_is_dropped(lab: FirewallLab) -> None:
    vm = lab.label(D)
    lab.topology.run_in(vm, ["ip", "link", "set", "eth0", "address", "fa:16:3e:00:ff:ff"])
    try:
        forged = lab.ping(D, "outside", src_mac="fa:16:3e:00:ff:ff")
    finally:
        lab.topology.run_in(vm, ["ip", "link", "set", "eth0", "address", DB_PORT.mac_address])
    forged.assert_agrees(False)
    lab.ping(D, "outside").assert_agrees(True)


def test_an_allowed_address_pair_may_send_from_its_address(
    lab: FirewallLab,
) -> None:
    from dataclasses import replace

    from sgweb.firewall.model import AddressPair

    paired = replace(DB_PORT, allowed_address_pairs=(AddressPair("192.0.2.98"),))
    lab.apply_fresh(replace(state(), ports=(WEB_PORT, paired, BARE_PORT, OPEN_PORT)))
    vm = lab.label(D)
    lab.topology.run_in(vm, ["ip", "addr", "add", "192.0.2.98/32", "dev", "eth0"])
    try:
        lab.ping(D, "outside", src_address="192.0.2.98").assert_agrees(True)
    finally:
        lab.topology.run_in(vm, ["ip", "addr", "del", "192.0.2.98/32", "dev", "eth0"])
        lab.apply_fresh(state())


def test_remote_groups_without_ipset_expand_to_one_rule_per_member(lab: FirewallLab) -> None:
    compiled = lab.apply_fresh(state(enable_ipset=False))
    try:
        assert compiled.ipsets == ()
        assert lab.firewall.ipset_names() == []
        lab.ping(OPEN, D).assert_agrees(True)  # the open port's address is a web member
        lab.ping("outside", D).assert_agrees(False)
        lab.tcp(W, D, 5432).assert_agrees(True)
    finally:
        lab.apply_fresh(state())


def test_the_kernel_holds_exactly_the_rendered_rules(lab: FirewallLab) -> None:
    from sgweb.firewall.render import render_iptables

    assert lab.compiled is not None
    for family in (4, 6):
        rendered = {
            line.replace("--mac-source " + mac.upper(), "--mac-source " + mac)
            for line in render_iptables(lab.compiled, family).splitlines()
            for mac in [_mac_in(line)]
        }
        saved = set(lab.firewall.save(family).splitlines())
        assert saved == rendered - {""}


def _mac_in(line: str) -> str:
    parts = line.split()
    if "--mac-source" in parts:
        return parts[parts.index("--mac-source") + 1].lower()
    return ""


def test_an_incremental_change_takes_effect_for_new_traffic_and_reverts(lab: FirewallLab) -> None:
    from dataclasses import replace

    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.incremental import diff

    assert lab.compiled is not None
    before_state, before = lab.state, lab.compiled
    lab.ping("outside", B).assert_agrees(False)
    opened = replace(
        DB_GROUP, rules=(*DB_GROUP.rules, rule("db-icmp-any", INGRESS, protocol="icmp"))
    )
    bare_in_db = replace(BARE_PORT, security_groups=(DB,))
    changed = lab.with_bridges(
        replace(
            before_state,
            ports=tuple(bare_in_db if p.id == B else p for p in before_state.ports),
            security_groups=(WEB_GROUP, opened),
        )
    )
    after = compile_host(changed)
    delta = diff(before, after)
    assert delta.iptables and not delta.removed_chains
    lab.firewall.apply(delta, rollback=diff(after, before)).raise_for_error()
    lab.state, lab.compiled = changed, after
    try:
        lab.ping("outside", B).assert_agrees(True)
        lab.ping("outside", D).assert_agrees(True)
        lab.ping(W, D).assert_agrees(False)  # web's egress still has no icmp
    finally:
        lab.firewall.apply(diff(after, before), rollback=diff(before, after)).raise_for_error()
        lab.state, lab.compiled = before_state, before
    lab.ping("outside", B).assert_agrees(False)
    lab.ping("outside", D).assert_agrees(False)


def test_a_stateless_group_needs_rules_for_replies_too(lab: FirewallLab) -> None:
    from dataclasses import replace

    ingress_only = SecurityGroup(
        "c0c0c0c0-3333-4333-8333-000000000003",
        "stateless",
        stateful=False,
        rules=(rule("sl-in", INGRESS, protocol="icmp"),),
    )
    both_ways = replace(
        ingress_only, rules=(*ingress_only.rules, rule("sl-out", EGRESS, protocol="icmp"))
    )
    try:
        for group, allowed in ((ingress_only, False), (both_ways, True)):
            bare = replace(BARE_PORT, security_groups=(group.id,))
            lab.apply_fresh(
                replace(
                    state(),
                    ports=tuple(bare if p.id == B else p for p in PORTS),
                    security_groups=(WEB_GROUP, DB_GROUP, group),
                )
            )
            observation = lab.ping("outside", B)
            observation.assert_agrees(allowed)
            # the request got in either way; without an egress rule its reply is dropped
            assert observation.flow.verdict == "ACCEPT"
            assert observation.flow.reply_hops[0].trace.notrack  # type: ignore[union-attr]
    finally:
        lab.apply_fresh(state())


def test_the_articles_four_pings_first_hit_the_icmp_rule_then_established(
    lab: FirewallLab,
) -> None:
    """Article section 4: of four echo requests of one ping, the first matches the group's ICMP
    rule and the next three RELATED,ESTABLISHED; every reply leaves as established."""
    from collections import Counter

    from tests.kernel.harness import _delta, _flow_hits

    assert lab.compiled is not None
    lab.runner.run(["conntrack", "-F"], netns=lab.host_ns, check=False)
    before = lab.firewall.read_counters(4)
    argv = ["icmp", WEB_PORT.fixed_ips[0], "--count", "4"]
    assert lab.topology.probe("outside", *argv)
    kernel = _delta(before, lab.firewall.read_counters(4))
    first = lab._trace_flow("outside", W, 4, protocol="icmp")
    later = lab._trace_flow("outside", W, 4, protocol="icmp", ct_state="ESTABLISHED")
    expected = Counter(_flow_hits(first, with_reply=True))
    for _ in range(3):
        expected.update(_flow_hits(later, with_reply=True))
    assert kernel == expected
    ingress = f"neutron-openvswi-i{W[:10]}"
    icmp_rule = next(
        hit.position
        for hit in first.hops[0].trace.matched  # type: ignore[union-attr]
        if hit.rule.origin.rule_id == "web-icmp"
    )
    assert kernel[("filter", ingress, icmp_rule)] == 1
    assert kernel[("filter", ingress, 2)] == 3  # RELATED,ESTABLISHED


def test_a_group_listing_its_ipv6_egress_rule_first_still_lets_ipv4_out(
    lab: FirewallLab,
) -> None:
    from dataclasses import replace

    v6_first = SecurityGroup(
        "d0d0d0d0-4444-4444-8444-000000000004",
        "default-like",
        rules=(rule("eg6", EGRESS, IPV6), rule("eg4", EGRESS, IPV4)),
    )
    bare = replace(BARE_PORT, security_groups=(v6_first.id,))
    try:
        lab.apply_fresh(
            replace(
                state(),
                ports=tuple(bare if p.id == B else p for p in PORTS),
                security_groups=(WEB_GROUP, DB_GROUP, v6_first),
            )
        )
        lab.ping(B, "outside", family=6).assert_agrees(True)
        lab.ping(B, "outside", family=4).assert_agrees(True)
    finally:
        lab.apply_fresh(state())
