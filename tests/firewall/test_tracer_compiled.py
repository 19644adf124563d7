"""The tracer and its explanations over what the compiler really emits."""

from __future__ import annotations

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import ORIGIN_ICMPV6, ORIGIN_NOTRACK, ORIGIN_RA_SPOOF
from sgweb.firewall.model import (
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.trace.explain import explain
from sgweb.firewall.trace.tracer import Packet, trace

WEB_ID = "11111111-aaaa-4bbb-8ccc-000000000001"
DB_ID = "22222222-aaaa-4bbb-8ccc-000000000002"
DNS_ID = "33333333-aaaa-4bbb-8ccc-000000000003"


def rule(
    rule_id: str,
    direction: str = "ingress",
    protocol: str | None = None,
    low: int | None = None,
    high: int | None = None,
    prefix: str | None = None,
    group: str | None = None,
    ethertype: str = "IPv4",
) -> SecurityGroupRule:
    return SecurityGroupRule(rule_id, direction, ethertype, protocol, low, high, prefix, group)


WEB = SecurityGroup(
    WEB_ID,
    "web",
    rules=(
        rule("r-ssh", protocol="tcp", low=22, high=22, prefix="198.51.100.0/24"),
        rule("r-http", protocol="tcp", low=8000, high=8080),
        rule("r-unreach", protocol="icmp", low=3, high=4),
        rule("r-ping", protocol="icmp", low=8),
        rule("r-out", direction="egress"),
        rule("r-out6", direction="egress", ethertype="IPv6"),
        rule("r-https6", protocol="tcp", low=443, high=443, ethertype="IPv6"),
    ),
)
DB = SecurityGroup(
    DB_ID,
    "db",
    rules=(
        rule("r-pg-web", protocol="tcp", low=5432, high=5432, group=WEB_ID),
        rule("r-pg-admin", protocol="tcp", low=5432, high=5432, prefix="203.0.113.0/24"),
    ),
)
DNS = SecurityGroup(
    DNS_ID,
    "dns",
    stateful=False,
    rules=(
        rule("r-dns", protocol="udp", low=53, high=53),
        rule("r-dns-out", direction="egress", protocol="udp"),
    ),
)

WEB_PORT = Port(
    "aaaaaaaa-1111-4222-8333-444444444444",
    "fa:16:3e:00:00:10",
    ("192.0.2.10", "2001:db8:1::10"),
    (WEB_ID,),
    (AddressPair("192.0.2.200", "fa:16:3e:00:00:99"),),
    dhcp_servers=("192.0.2.2", "2001:db8:1::2"),
    name="web-1",
)
DB_PORT = Port(
    "bbbbbbbb-1111-4222-8333-444444444444",
    "fa:16:3e:00:00:20",
    ("192.0.2.20",),
    (DB_ID, WEB_ID),
    dhcp_servers=("192.0.2.2",),
    name="db-1",
)
BARE_PORT = Port(
    "cccccccc-1111-4222-8333-444444444444",
    "fa:16:3e:00:00:30",
    ("192.0.2.30",),
    (),
    dhcp_servers=("192.0.2.2",),
    name="bare-1",
)
OPEN_PORT = Port(
    "dddddddd-1111-4222-8333-444444444444",
    "fa:16:3e:00:00:40",
    ("192.0.2.40",),
    port_security_enabled=False,
    name="open-1",
)
DNS_PORT = Port(
    "eeeeeeee-1111-4222-8333-444444444444",
    "fa:16:3e:00:00:50",
    ("192.0.2.50",),
    (DNS_ID,),
    name="dns-1",
)
MEMBERS = ((WEB_ID, ("192.0.2.10", "192.0.2.200", "192.0.2.20", "2001:db8:1::10")),)


def state(enable_ipset: bool = True) -> HostState:
    return HostState(
        ports=(WEB_PORT, DB_PORT, BARE_PORT, OPEN_PORT, DNS_PORT),
        security_groups=(WEB, DB, DNS),
        remote_group_members=MEMBERS,
        enable_ipset=enable_ipset,
    )


STATE = state()
COMPILED = compile_host(STATE)


def tap(port: Port) -> str:
    return "tap" + port.id[:11]


def inbound(port: Port, **fields: object) -> Packet:
    """Arriving at the port's qbr from its qvb veth, leaving by its tap."""
    base: dict[str, object] = {
        "dst": port.fixed_ips[0],
        "physdev_in": "qvb" + port.id[:11],
        "physdev_out": tap(port),
    }
    return Packet(**{**base, **fields})  # type: ignore[arg-type]


def outbound(port: Port, **fields: object) -> Packet:
    base: dict[str, object] = {
        "src": port.fixed_ips[0],
        "src_mac": port.mac_address,
        "physdev_in": tap(port),
        "physdev_out": "qvb" + port.id[:11],
    }
    return Packet(**{**base, **fields})  # type: ignore[arg-type]


def run(packet: Packet, host_state: HostState = STATE, compiled=COMPILED):
    result = trace(compiled, packet)
    return result, explain(result, host_state)


def test_user_rule_allows_ssh_from_its_prefix():
    result, why = run(inbound(WEB_PORT, src="198.51.100.7", protocol="tcp", dport=22))
    assert result.verdict == "ACCEPT" and why.rule_id == "r-ssh"
    assert why.text == (
        "allowed at port web-1 ingress by rule r-ssh (tcp/22 from 198.51.100.0/24) of group web"
    )


def test_default_drop_points_at_the_nearest_rule():
    result, why = run(inbound(DB_PORT, src="198.51.100.7", protocol="tcp", dport=5432))
    assert result.verdict == "DROP" and why.reason == "default-drop"
    assert why.nearest_rule_id == "r-pg-web" and why.differs == ("remote",)
    assert "no rule of groups db, web allows tcp/5432 from 198.51.100.7" in why.text


def test_multiport_range_edges():
    verdicts = [
        run(inbound(WEB_PORT, src="203.0.113.1", protocol="tcp", dport=port))[0].verdict
        for port in (7999, 8000, 8080, 8081)
    ]
    assert verdicts == ["DROP", "ACCEPT", "ACCEPT", "DROP"]


def test_icmp_type_with_code_and_type_alone():
    unreach = run(inbound(WEB_PORT, src="203.0.113.1", protocol="icmp", icmp_type=3, icmp_code=4))[
        0
    ]
    other_code = run(
        inbound(WEB_PORT, src="203.0.113.1", protocol="icmp", icmp_type=3, icmp_code=1)
    )[0]
    ping = run(inbound(WEB_PORT, src="203.0.113.1", protocol="1"))[0]
    timestamp = run(inbound(WEB_PORT, src="203.0.113.1", protocol="icmp", icmp_type=13))[0]
    related = run(
        inbound(
            WEB_PORT, src="203.0.113.1", protocol="icmp", icmp_type=3, icmp_code=4,
            ct_state="RELATED",
        )
    )[0]  # fmt: skip
    # An unreachable that quotes no connection is INVALID to conntrack, whatever the rules say.
    assert [unreach.verdict, other_code.verdict, ping.verdict, timestamp.verdict] == [
        "DROP",
        "DROP",
        "ACCEPT",
        "DROP",
    ]
    assert unreach.ct_state == "INVALID" and related.verdict == "ACCEPT"


def test_anti_spoofing_by_address_and_by_mac():
    by_ip = run(
        outbound(WEB_PORT, src="203.0.113.9", dst="198.51.100.1", protocol="tcp", dport=80)
    )[1]
    by_mac = run(
        outbound(
            WEB_PORT, src_mac="fa:16:3e:00:00:77", dst="198.51.100.1", protocol="tcp", dport=80
        )
    )[1]
    assert by_ip.reason == "anti-spoofing-ip" and "192.0.2.10, 192.0.2.200" in by_ip.text
    assert by_mac.reason == "anti-spoofing-mac"


def test_allowed_address_pair_with_its_own_mac_leaves():
    result, why = run(
        outbound(
            WEB_PORT,
            src="192.0.2.200",
            src_mac="fa:16:3e:00:00:99",
            dst="198.51.100.1",
            protocol="tcp",
            dport=80,
        )
    )
    assert result.verdict == "ACCEPT" and why.rule_id == "r-out"


def test_dhcp_both_ways_and_the_vm_as_dhcp_server():
    request = run(
        outbound(
            BARE_PORT, src="0.0.0.0", dst="255.255.255.255", protocol="udp", sport=68, dport=67
        )
    )[1]
    reply = run(inbound(BARE_PORT, src="192.0.2.2", protocol="udp", sport=67, dport=68))[1]
    server = run(outbound(WEB_PORT, dst="192.0.2.99", protocol="udp", sport=67, dport=68))[1]
    assert (request.verdict, request.reason) == ("ACCEPT", "dhcp")
    assert (reply.verdict, reply.reason) == ("ACCEPT", "dhcp")
    assert (server.verdict, server.reason) == ("DROP", "dhcp-server")


def test_established_reply_and_invalid():
    reply = run(
        inbound(
            BARE_PORT,
            src="198.51.100.1",
            protocol="tcp",
            sport=80,
            dport=40000,
            ct_state="ESTABLISHED",
        )
    )[1]
    invalid = run(
        inbound(WEB_PORT, src="198.51.100.1", protocol="tcp", dport=22, ct_state="INVALID")
    )[1]
    assert (reply.verdict, reply.reason) == ("ACCEPT", "established")
    assert (invalid.verdict, invalid.reason) == ("DROP", "invalid")


def test_port_without_groups_drops_new_traffic_saying_so():
    result, why = run(inbound(BARE_PORT, src="198.51.100.1", protocol="tcp", dport=22))
    assert result.verdict == "DROP" and why.reason == "default-drop"
    assert "has no security group" in why.text


def test_port_security_off_is_let_through():
    result, why = run(inbound(OPEN_PORT, src="198.51.100.1", protocol="tcp", dport=25))
    assert result.verdict == "ACCEPT"
    assert why.text == "let through: port security is disabled on port open-1"


@pytest.mark.parametrize("enable_ipset", [True, False])
def test_remote_group_rule_with_and_without_ipset(enable_ipset: bool):
    host_state = state(enable_ipset)
    compiled = compile_host(host_state)
    member = run(
        inbound(DB_PORT, src="192.0.2.200", protocol="tcp", dport=5432), host_state, compiled
    )
    stranger = run(
        inbound(DB_PORT, src="192.0.2.201", protocol="tcp", dport=5432), host_state, compiled
    )
    assert member[0].verdict == "ACCEPT" and member[1].rule_id == "r-pg-web"
    assert stranger[0].verdict == "DROP"
    hit = next(h for h in member[0].matched if h.rule.origin.rule_id == "r-pg-web")
    if enable_ipset:
        # the web group's set, matched on the source (not just "some set")
        assert hit.rule.match.match_set == "IPv4" + WEB_ID[:20]
        assert hit.rule.match.match_set_direction == "src"
        assert hit.rule.match.source is None
    else:
        assert hit.rule.match.source == "192.0.2.200/32" and hit.rule.origin.member


def test_ipv6_neighbour_discovery_in_and_https_by_rule():
    ns = run(
        inbound(
            WEB_PORT, src="2001:db8:1::1", dst="2001:db8:1::10", protocol="ipv6-icmp", icmp_type=135
        )
    )
    https = run(
        inbound(WEB_PORT, src="2001:db8:ff::1", dst="2001:db8:1::10", protocol="tcp", dport=443)
    )
    assert ns[0].verdict == "ACCEPT" and ns[0].matched[-2].rule.origin.kind == ORIGIN_ICMPV6
    assert ns[1].reason == "icmpv6"
    assert https[0].verdict == "ACCEPT" and https[1].rule_id == "r-https6"


def test_router_advertisement_from_the_vm_is_dropped():
    result, why = run(
        outbound(WEB_PORT, src="2001:db8:1::10", dst="ff02::1", protocol="icmpv6", icmp_type=134)
    )
    assert result.verdict == "DROP"
    assert result.deciding.rule.origin.kind == ORIGIN_RA_SPOOF
    assert why.reason == "router-advertisement"


def test_stateless_group_bypasses_conntrack():
    out = run(outbound(DNS_PORT, dst="198.51.100.53", protocol="udp", sport=5353, dport=53))[0]
    assert out.notrack and out.ct_state == "UNTRACKED" and out.verdict == "ACCEPT"
    assert out.matched[1].rule.origin.kind == ORIGIN_NOTRACK


def test_input_hook_never_reaches_the_egress_chain():
    result, why = run(
        Packet(
            src="192.0.2.10",
            dst="192.0.2.1",
            src_mac=WEB_PORT.mac_address,
            protocol="tcp",
            dport=22,
            physdev_in=tap(WEB_PORT),
            hook="INPUT",
        )
    )
    assert result.verdict == "ACCEPT" and why.reason == "host-input"
    tried = [s for s in result.path if s.chain == "neutron-openvswi-INPUT" and s.rule]
    assert tried and not any(s.matched for s in tried)


def test_shared_bridge_traversal_explains_source_egress_before_destination_ingress():
    result, why = run(
        Packet(
            src="192.0.2.20",
            dst="192.0.2.10",
            src_mac=DB_PORT.mac_address,
            protocol="tcp",
            dport=8000,
            physdev_in=tap(DB_PORT),
            physdev_out=tap(WEB_PORT),
        )
    )
    assert result.verdict == "ACCEPT"
    # sg-chain lists web-1 first, so netfilter checks its ingress before db-1's egress...
    chains = [h.chain for h in result.matched if h.chain.startswith("neutron-openvswi-")]
    assert chains.index("neutron-openvswi-iaaaaaaaa-1") < chains.index(
        "neutron-openvswi-obbbbbbbb-1"
    )
    # ...but the explanation follows the packet: out of db-1, into web-1.
    assert [(d.port_name, d.direction, d.rule_id) for d in why.decisions] == [
        ("db-1", "egress", "r-out"),
        ("web-1", "ingress", "r-http"),
    ]
    assert why.rule_id == "r-http"


def test_packets_the_host_sends_are_not_filtered_by_any_port():
    result, why = run(
        Packet(src="192.0.2.1", dst="192.0.2.10", protocol="tcp", dport=22, hook="OUTPUT")
    )
    assert result.verdict == "ACCEPT" and why.reason == "host-output"


def test_a_reply_to_a_stateless_port_is_explained_as_needing_its_own_rule():
    result, why = run(
        inbound(
            DNS_PORT,
            src="198.51.100.53",
            protocol="udp",
            sport=53,
            dport=5353,
            ct_state="ESTABLISHED",
        )
    )
    assert result.verdict == "DROP" and why.reason == "default-drop"
    assert "stateless" in why.text and why.nearest_rule_id == "r-dns"


def test_a_port_without_addresses_is_held_to_its_mac():
    bare = Port("ffffffff-1111-4222-8333-444444444444", "fa:16:3e:00:00:60", (), name="noip-1")
    host_state = HostState(ports=(bare,))
    compiled = compile_host(host_state)
    forged = run(
        Packet(
            src="192.0.2.77",
            dst="198.51.100.1",
            src_mac="fa:16:3e:00:00:61",
            protocol="tcp",
            dport=80,
            physdev_in=tap(bare),
            physdev_out="qvb" + bare.id[:11],
        ),
        host_state,
        compiled,
    )[1]
    assert forged.reason == "anti-spoofing-mac"
    assert "fa:16:3e:00:00:60" in forged.text
