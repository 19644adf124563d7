"""Compiler behaviour beyond the article's examples: IPv6, port security off, stateless groups,
conntrack zones, deduplication, origins and determinism."""

from __future__ import annotations

import dataclasses

from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.ir import (
    ORIGIN_ANTI_SPOOF,
    ORIGIN_FALLBACK,
    ORIGIN_PORT_SECURITY_OFF,
    ORIGIN_SG_RULE,
    CompiledHost,
)
from sgweb.firewall.model import HostState, Port, SecurityGroup, SecurityGroupRule
from sgweb.firewall.render import render_ipsets, render_iptables, render_rule
from tests.firewall import scenarios


def _lines(compiled: CompiledHost, family: int, chain: str) -> list[str]:
    prefix = f"-A {chain} "
    return [
        line for line in render_iptables(compiled, family).splitlines() if line.startswith(prefix)
    ]


def _strip_comments(lines: list[str]) -> list[str]:
    from tests.firewall.article import without_comments

    return [without_comments(line) for line in lines]


def test_ipv6_port_gets_neighbour_discovery_dhcpv6_and_link_local_anti_spoofing() -> None:
    compiled = compile_host(scenarios.host_state())
    ingress = _lines(compiled, 6, "neutron-openvswi-iaaaaaaaa-0")
    assert ingress[2:6] == [
        f"-A neutron-openvswi-iaaaaaaaa-0 -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN"
        for t in (130, 134, 135, 136)
    ]
    assert (
        "-A neutron-openvswi-iaaaaaaaa-0 -s 2001:db8:1::2/128 -p udp -m udp --sport 547 "
        "--dport 546 -j RETURN" in ingress
    )
    egress = _lines(compiled, 6, "neutron-openvswi-oaaaaaaaa-0")
    # Current Neutron: DHCPv6 requests only after the source check, after ICMPv6.
    assert egress[:7] == [
        "-A neutron-openvswi-oaaaaaaaa-0 -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 "
        "--icmpv6-type 131 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 "
        "--icmpv6-type 135 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -s ::/128 -d ff02::/16 -p ipv6-icmp -m icmp6 "
        "--icmpv6-type 143 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -j neutron-openvswi-saaaaaaaa-0",
        "-A neutron-openvswi-oaaaaaaaa-0 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
        "-A neutron-openvswi-oaaaaaaaa-0 -p ipv6-icmp -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 546 --dport 547 -j RETURN",
    ]
    assert (
        "-A neutron-openvswi-oaaaaaaaa-0 -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP" in egress
    )
    assert "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 547 --dport 546 -j DROP" in egress
    spoof = _lines(compiled, 6, "neutron-openvswi-saaaaaaaa-0")
    assert spoof == [
        "-A neutron-openvswi-saaaaaaaa-0 -s 2001:db8:1::a/128 -m mac --mac-source "
        "FA:16:3E:00:00:0A -j RETURN",
        "-A neutron-openvswi-saaaaaaaa-0 -s fe80::f816:3eff:fe00:a/128 -m mac --mac-source "
        "FA:16:3E:00:00:0A -j RETURN",
        "-A neutron-openvswi-saaaaaaaa-0 -j DROP",
    ]


def test_only_a_dhcp_discover_from_0_0_0_0_passes_before_the_anti_spoofing_check() -> None:
    egress = _lines(compile_host(scenarios.host_state()), 4, "neutron-openvswi-oaaaaaaaa-0")
    assert egress[:4] == [
        "-A neutron-openvswi-oaaaaaaaa-0 -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp "
        "--sport 68 --dport 67 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -j neutron-openvswi-saaaaaaaa-0",
        "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 68 --dport 67 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 67 --dport 68 -j DROP",
    ]


def test_the_article_compat_layout_lets_every_dhcp_request_pass_before_the_check() -> None:
    state = dataclasses.replace(scenarios.host_state(), compat="article")
    egress = _lines(compile_host(state), 4, "neutron-openvswi-oaaaaaaaa-0")
    assert egress[:3] == [
        "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 68 --dport 67 -j RETURN",
        "-A neutron-openvswi-oaaaaaaaa-0 -j neutron-openvswi-saaaaaaaa-0",
        "-A neutron-openvswi-oaaaaaaaa-0 -p udp -m udp --sport 67 --dport 68 -j DROP",
    ]


def test_an_unknown_compat_layout_is_refused() -> None:
    import pytest

    from sgweb.firewall import FirewallError

    with pytest.raises(FirewallError, match="'linuxbridge' is not one of neutron, article"):
        compile_host(dataclasses.replace(scenarios.host_state(), compat="linuxbridge"))


def test_ipv6_rules_use_ip6tables_syntax_and_v6_sets() -> None:
    compiled = compile_host(scenarios.host_state())
    ingress = _strip_comments(_lines(compiled, 6, "neutron-openvswi-iaaaaaaaa-0"))
    assert (
        "-A neutron-openvswi-iaaaaaaaa-0 -p ipv6-icmp -m set --match-set "
        "IPv622222222-bbbb-4bbb-8 src -j RETURN" in ingress
    )
    assert "IPv622222222-bbbb-4bbb-8" in {s.name for s in compiled.ipsets}


def test_allowed_address_pairs_are_in_the_anti_spoof_chain_with_their_mac() -> None:
    spoof = _lines(compile_host(scenarios.host_state()), 4, "neutron-openvswi-saaaaaaaa-0")
    assert spoof == [
        "-A neutron-openvswi-saaaaaaaa-0 -s 192.0.2.10/32 -m mac --mac-source FA:16:3E:00:00:0A "
        "-j RETURN",
        "-A neutron-openvswi-saaaaaaaa-0 -s 192.0.2.200/32 -m mac --mac-source FA:16:3E:00:00:0A "
        "-j RETURN",
        "-A neutron-openvswi-saaaaaaaa-0 -s 203.0.113.16/28 -m mac --mac-source "
        "FA:16:3E:00:01:0A -j RETURN",
        "-A neutron-openvswi-saaaaaaaa-0 -j DROP",
    ]


def test_port_security_off_gets_no_chains_and_is_accepted_in_our_forward_chain() -> None:
    compiled = compile_host(scenarios.host_state())
    text = render_iptables(compiled, 4)
    assert "dddddddd" not in "".join(line for line in text.splitlines() if line[:1] == ":")
    forward = compiled.v4.table("filter").chain("neutron-openvswi-FORWARD")
    accepts = [r for r in forward.rules if r.origin.kind == ORIGIN_PORT_SECURITY_OFF]
    assert [render_rule(r) for r in accepts] == [
        "-A neutron-openvswi-FORWARD -m physdev --physdev-out tapdddddddd-00 --physdev-is-bridged "
        "-j ACCEPT",
        "-A neutron-openvswi-FORWARD -m physdev --physdev-in tapdddddddd-00 --physdev-is-bridged "
        "-j ACCEPT",
    ]
    assert forward.rules.index(accepts[0]) > max(
        i for i, r in enumerate(forward.rules) if r.target == "neutron-openvswi-sg-chain"
    )


def test_port_without_groups_gets_only_the_base_rules() -> None:
    compiled = compile_host(scenarios.host_state())
    chain = compiled.v4.table("filter").chain("neutron-openvswi-ieeeeeeee-0")
    assert [r.origin.kind for r in chain.rules] == ["invalid", "established", ORIGIN_FALLBACK]


def test_stateless_group_bypasses_conntrack_and_has_no_state_rules() -> None:
    compiled = compile_host(scenarios.host_state())
    ingress = _lines(compiled, 4, "neutron-openvswi-icccccccc-0")
    egress = _lines(compiled, 4, "neutron-openvswi-occcccccc-0")
    assert not any("--state" in line for line in ingress + egress)
    raw = [
        render_rule(r) for r in compiled.v4.table("raw").chain("neutron-openvswi-PREROUTING").rules
    ]
    assert (
        "-A neutron-openvswi-PREROUTING -m physdev --physdev-in tapcccccccc-00 -j CT --notrack"
        in raw
    )


def test_each_port_has_its_own_conntrack_zone_from_4097_and_given_ones_win() -> None:
    state = scenarios.host_state()
    raw = compile_host(state).v4.table("raw").chain("neutron-openvswi-PREROUTING")
    zones = {r.match.physdev_in: r.target_args for r in raw.rules if r.match.physdev_in}
    assert zones["tapaaaaaaaa-00"] == ("--zone", "4097")
    assert zones["tapbbbbbbbb-00"] == ("--zone", "4098")
    assert zones["tapeeeeeeee-00"] != zones["tapaaaaaaaa-00"]
    by_network = dataclasses.replace(state, conntrack_zones=(("net-1", 7),))
    raw = compile_host(by_network).v4.table("raw").chain("neutron-openvswi-PREROUTING")
    zones = {r.match.physdev_in: r.target_args for r in raw.rules if r.match.physdev_in}
    assert zones["tapbbbbbbbb-00"] == ("--zone", "7")
    # The zone the control plane stored for the port wins over everything else.
    ports = tuple(
        dataclasses.replace(p, conntrack_zone=5000) if p.id.startswith("bbbb") else p
        for p in state.ports
    )
    pinned = dataclasses.replace(by_network, ports=ports)
    raw = compile_host(pinned).v4.table("raw").chain("neutron-openvswi-PREROUTING")
    zones = {r.match.physdev_in: r.target_args for r in raw.rules if r.match.physdev_in}
    assert zones["tapbbbbbbbb-00"] == zones["qvbbbbbbbbb-00"] == ("--zone", "5000")


def test_traffic_towards_a_vm_is_zoned_by_its_qvb_without_any_bridge_name() -> None:
    # Neutron's hybrid driver: the zone on both of the port's devices, whatever the networks.
    state = scenarios.host_state()
    raw = compile_host(state).v4.table("raw").chain("neutron-openvswi-PREROUTING")
    lines = [render_rule(r) for r in raw.rules]
    assert (
        "-A neutron-openvswi-PREROUTING -m physdev --physdev-in tapaaaaaaaa-00 -j CT --zone 4097"
        in lines
    )
    assert (
        "-A neutron-openvswi-PREROUTING -m physdev --physdev-in qvbaaaaaaaa-00 -j CT --zone 4097"
        in lines
    )
    assert not any("--physdev-is-in" in line for line in lines)


def test_ports_on_a_shared_bridge_share_its_zone() -> None:
    base = scenarios.host_state()
    ports = tuple(dataclasses.replace(p, bridge="br0", network_id=None) for p in base.ports)
    raw = compile_host(dataclasses.replace(base, ports=ports)).v4.table("raw")
    lines = [render_rule(r) for r in raw.chain("neutron-openvswi-PREROUTING").rules]
    assert lines[-1] == "-A neutron-openvswi-PREROUTING -i br0 -j CT --zone 4097"
    assert not any("--physdev-in qvb" in line for line in lines)


def test_a_rule_shared_by_two_groups_is_emitted_once() -> None:
    rule = SecurityGroupRule("r1", "ingress", "IPv4", "tcp", 22, 22)
    twin = SecurityGroupRule("r2", "ingress", "IPv4", "tcp", 22, 22)
    port = Port("p1", "fa:16:3e:00:00:01", ("192.0.2.10",), security_groups=("g1", "g2"))
    state = HostState(
        ports=(port,),
        security_groups=(SecurityGroup("g1", rules=(rule,)), SecurityGroup("g2", rules=(twin,))),
    )
    chain = compile_host(state).v4.table("filter").chain("neutron-openvswi-ip1")
    user = [r for r in chain.rules if r.origin.kind == ORIGIN_SG_RULE]
    assert [(r.origin.group_id, r.origin.rule_id) for r in user] == [("g1", "r1")]


def test_every_rule_carries_an_origin_naming_its_port_and_purpose() -> None:
    compiled = compile_host(scenarios.host_state())
    for family in (compiled.v4, compiled.v6):
        for table in family.tables:
            for chain in table.chains:
                for rule in chain.rules:
                    assert rule.origin.kind
                    if chain.name.startswith(("neutron-openvswi-i", "neutron-openvswi-o")):
                        assert rule.origin.port_id is not None
    spoof = compiled.v4.table("filter").chain("neutron-openvswi-saaaaaaaa-0")
    assert {r.origin.kind for r in spoof.rules} == {ORIGIN_ANTI_SPOOF}


def test_sg_rule_comments_carry_only_the_rule_id() -> None:
    compiled = compile_host(scenarios.host_state())
    comments = {
        r.comment
        for family in (compiled.v4, compiled.v6)
        for table in family.tables
        for chain in table.chains
        for r in chain.rules
        if r.comment
    }
    assert comments and all(c.startswith("sg-rule ") for c in comments)


def test_same_input_gives_byte_identical_output() -> None:
    first = compile_host(scenarios.host_state())
    second = compile_host(scenarios.host_state(), cache=CompileCache())
    for family in (4, 6):
        assert render_iptables(first, family) == render_iptables(second, family)
    assert render_ipsets(first) == render_ipsets(second)


def test_port_order_follows_device_names_not_input_order() -> None:
    state = scenarios.host_state()
    reversed_state = dataclasses.replace(state, ports=tuple(reversed(state.ports)))
    assert render_iptables(compile_host(state), 4) == render_iptables(
        compile_host(reversed_state), 4
    )


def test_only_referenced_sets_are_created_even_when_empty() -> None:
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, ())
    compiled = compile_host(state)
    names = {s.name: s for s in compiled.ipsets}
    assert set(names) == {
        "IPv411111111-aaaa-4aaa-8",
        "IPv422222222-bbbb-4bbb-8",
        "IPv622222222-bbbb-4bbb-8",
    }
    assert names["IPv422222222-bbbb-4bbb-8"].members == ()


def test_host_prefixes_become_addresses_in_sets_but_an_ipv6_slash_32_stays_a_range() -> None:
    members = ("192.0.2.9/32", "198.51.100.0/24", "2001:db8::/32", "2001:db8:1::5/128")
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, members)
    names = {s.name: s for s in compile_host(state).ipsets}
    assert names["IPv422222222-bbbb-4bbb-8"].members == ("192.0.2.9", "198.51.100.0/24")
    assert names["IPv622222222-bbbb-4bbb-8"].members == ("2001:db8::/32", "2001:db8:1::5")


def test_without_ipset_members_expand_to_rules_skipping_the_ports_own_address() -> None:
    compiled = compile_host(scenarios.host_state(enable_ipset=False))
    chain = compiled.v4.table("filter").chain("neutron-openvswi-ibbbbbbbb-0")
    members = [r.origin.member for r in chain.rules if r.origin.rule_id == "web-from-db"]
    assert members == ["198.51.100.7/32"]  # 192.0.2.11 is port B's own address


def test_numeric_and_named_protocols_render_as_iptables_save_prints_them() -> None:
    ingress = _strip_comments(
        _lines(compile_host(scenarios.host_state()), 4, "neutron-openvswi-ibbbbbbbb-0")
    )
    assert "-A neutron-openvswi-ibbbbbbbb-0 -s 203.0.113.0/25 -p gre -j RETURN" in ingress
    assert "-A neutron-openvswi-ibbbbbbbb-0 -p udplite -m multiport --dports 9 -j RETURN" in ingress


def test_a_stateless_port_on_its_own_bridge_is_untracked_both_ways() -> None:
    base = scenarios.host_state()
    ports = tuple(
        dataclasses.replace(p, bridge="qbr" + p.id[:11]) if p.id == scenarios.PORT_C else p
        for p in base.ports
    )
    raw = compile_host(dataclasses.replace(base, ports=ports)).v4.table("raw")
    rules = raw.chain("neutron-openvswi-PREROUTING").rules
    towards = [r for r in rules if r.match.in_interface == "qbrcccccccc-00"]
    assert [render_rule(r) for r in towards] == [
        "-A neutron-openvswi-PREROUTING -i qbrcccccccc-00 -j CT --notrack"
    ]
    assert towards[0].origin.port_id == scenarios.PORT_C


def test_ports_with_different_given_zones_on_one_bridge_are_refused() -> None:
    import pytest

    from sgweb.firewall import FirewallError

    base = scenarios.host_state()
    ports = tuple(
        dataclasses.replace(p, bridge="br0", conntrack_zone=5000 + index)
        for index, p in enumerate(base.ports)
    )
    with pytest.raises(FirewallError, match="bridge br0 would carry conntrack zones"):
        compile_host(dataclasses.replace(base, ports=ports))


def test_an_ipv6_any_rule_listed_first_does_not_hide_the_ipv4_one() -> None:
    rules = (
        SecurityGroupRule("out-v6", "egress", "IPv6"),
        SecurityGroupRule("out-v4", "egress", "IPv4"),
    )
    port = Port("p1", "fa:16:3e:00:00:01", ("192.0.2.10", "2001:db8::10"), security_groups=("g",))
    compiled = compile_host(
        HostState(ports=(port,), security_groups=(SecurityGroup("g", rules=rules),))
    )
    for family, rule_id in ((compiled.v4, "out-v4"), (compiled.v6, "out-v6")):
        chain = family.table("filter").chain("neutron-openvswi-op1")
        assert [r.origin.rule_id for r in chain.rules if r.origin.kind == ORIGIN_SG_RULE] == [
            rule_id
        ]
