"""The tracer's walk over hand-built IR in the Neutron layout.

These tests pin netfilter semantics (jumps, RETURN, policies, physdev, state, sets, CT) without
depending on the compiler; tests against compiled scenarios live in test_tracer_compiled.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sgweb.firewall.ir import (
    ACCEPT,
    CT,
    DROP,
    ORIGIN_ACCEPT_UNFILTERED,
    ORIGIN_ANTI_SPOOF,
    ORIGIN_CONNTRACK_ZONE,
    ORIGIN_DHCP,
    ORIGIN_DHCP_SPOOF,
    ORIGIN_ESTABLISHED,
    ORIGIN_FALLBACK,
    ORIGIN_INVALID,
    ORIGIN_JUMP,
    ORIGIN_NOTRACK,
    ORIGIN_PORT_SECURITY_OFF,
    ORIGIN_SG_RULE,
    RETURN,
    Chain,
    CompiledFamily,
    CompiledHost,
    IpSet,
    Match,
    Origin,
    PortRange,
    Rule,
    Table,
)
from sgweb.firewall.trace.tracer import (
    CT_UNTRACKED,
    STEP_POLICY,
    STEP_RETURN,
    Packet,
    TraceError,
    prepare,
    trace,
)

P = "neutron-openvswi"


@dataclass
class HandPort:
    id: str
    ip: str
    mac: str
    ingress: list[tuple[Match, str]] = field(default_factory=list)  # (match, rule id)
    egress: list[tuple[Match, str]] = field(default_factory=list)
    extra_addresses: list[tuple[str, str]] = field(default_factory=list)
    port_security: bool = True
    notrack: bool = False
    zone: int = 4097

    @property
    def tap(self) -> str:
        return "tap" + self.id[:11]

    @property
    def short(self) -> str:
        return self.id[:10]


def _rule(
    chain: str,
    match: Match,
    target: str,
    kind: str,
    port: HandPort | None = None,
    direction: str | None = None,
    rule_id: str | None = None,
    target_args: tuple[str, ...] = (),
) -> Rule:
    origin = Origin(kind, port.id if port else None, direction, None, rule_id)
    return Rule(chain, match, target, origin, target_args)


def hand_host(ports: list[HandPort], ipsets: tuple[IpSet, ...] = ()) -> CompiledHost:
    """A v4 filter + raw table laid out like the article's 3.3.3 listing."""
    forward_top = f"{P}-FORWARD"
    sg = f"{P}-sg-chain"
    fallback = f"{P}-sg-fallback"
    chains: list[Chain] = []
    chains.append(
        Chain(
            "FORWARD",
            (
                _rule("FORWARD", Match(), "neutron-filter-top", ORIGIN_JUMP),
                _rule("FORWARD", Match(), forward_top, ORIGIN_JUMP),
            ),
            owned=False,
        )
    )
    chains.append(
        Chain("INPUT", (_rule("INPUT", Match(), f"{P}-INPUT", ORIGIN_JUMP),), owned=False)
    )
    chains.append(
        Chain(
            "neutron-filter-top", (_rule("neutron-filter-top", Match(), f"{P}-local", ORIGIN_JUMP),)
        )
    )
    chains.append(Chain(f"{P}-local", ()))
    fwd: list[Rule] = []
    inp: list[Rule] = []
    sgc: list[Rule] = []
    for port in ports:
        if not port.port_security:
            for key in ("physdev_out", "physdev_in"):
                m = Match(**{key: port.tap}, physdev_is_bridged=True)
                fwd.append(_rule(forward_top, m, ACCEPT, ORIGIN_PORT_SECURITY_OFF, port))
            continue
        i_chain, o_chain, s_chain = f"{P}-i{port.short}", f"{P}-o{port.short}", f"{P}-s{port.short}"
        out_m = Match(physdev_out=port.tap, physdev_is_bridged=True)
        in_m = Match(physdev_in=port.tap, physdev_is_bridged=True)
        fwd.append(_rule(forward_top, out_m, sg, ORIGIN_JUMP, port, "ingress"))
        fwd.append(_rule(forward_top, in_m, sg, ORIGIN_JUMP, port, "egress"))
        inp.append(_rule(f"{P}-INPUT", in_m, o_chain, ORIGIN_JUMP, port, "egress"))
        sgc.append(_rule(sg, out_m, i_chain, ORIGIN_JUMP, port, "ingress"))
        sgc.append(_rule(sg, in_m, o_chain, ORIGIN_JUMP, port, "egress"))
        ingress = [
            _rule(i_chain, Match(states=("INVALID",)), DROP, ORIGIN_INVALID, port, "ingress"),
            _rule(
                i_chain,
                Match(states=("RELATED", "ESTABLISHED")),
                RETURN,
                ORIGIN_ESTABLISHED,
                port,
                "ingress",
            ),
            _rule(
                i_chain,
                Match(
                    source="192.0.2.2/32",
                    protocol="udp",
                    source_port=PortRange(67, 67),
                    destination_port=PortRange(68, 68),
                ),
                RETURN,
                ORIGIN_DHCP,
                port,
                "ingress",
            ),
        ]
        ingress += [
            _rule(i_chain, m, RETURN, ORIGIN_SG_RULE, port, "ingress", rid)
            for m, rid in port.ingress
        ]
        ingress.append(_rule(i_chain, Match(), fallback, ORIGIN_FALLBACK, port, "ingress"))
        egress = [
            _rule(
                o_chain,
                Match(
                    protocol="udp",
                    source_port=PortRange(68, 68),
                    destination_port=PortRange(67, 67),
                ),
                RETURN,
                ORIGIN_DHCP,
                port,
                "egress",
            ),
            _rule(o_chain, Match(), s_chain, ORIGIN_ANTI_SPOOF, port, "egress"),
            _rule(
                o_chain,
                Match(
                    protocol="udp",
                    source_port=PortRange(67, 67),
                    destination_port=PortRange(68, 68),
                ),
                DROP,
                ORIGIN_DHCP_SPOOF,
                port,
                "egress",
            ),
            _rule(o_chain, Match(states=("INVALID",)), DROP, ORIGIN_INVALID, port, "egress"),
            _rule(
                o_chain,
                Match(states=("RELATED", "ESTABLISHED")),
                RETURN,
                ORIGIN_ESTABLISHED,
                port,
                "egress",
            ),
        ]
        egress += [
            _rule(o_chain, m, RETURN, ORIGIN_SG_RULE, port, "egress", rid) for m, rid in port.egress
        ]
        egress.append(_rule(o_chain, Match(), fallback, ORIGIN_FALLBACK, port, "egress"))
        spoof = [
            _rule(
                s_chain,
                Match(source=f"{ip}/32", mac_source=mac.upper()),
                RETURN,
                ORIGIN_ANTI_SPOOF,
                port,
                "egress",
            )
            for ip, mac in [(port.ip, port.mac), *port.extra_addresses]
        ]
        spoof.append(_rule(s_chain, Match(), DROP, ORIGIN_ANTI_SPOOF, port, "egress"))
        chains += [
            Chain(i_chain, tuple(ingress)),
            Chain(o_chain, tuple(egress)),
            Chain(s_chain, tuple(spoof)),
        ]
    sgc.append(_rule(sg, Match(), ACCEPT, ORIGIN_ACCEPT_UNFILTERED))
    chains += [
        Chain(forward_top, tuple(fwd)),
        Chain(f"{P}-INPUT", tuple(inp)),
        Chain(sg, tuple(sgc)),
        Chain(fallback, (_rule(fallback, Match(), DROP, ORIGIN_FALLBACK),)),
    ]
    raw_rules: list[Rule] = []
    for port in ports:
        if not port.port_security:
            continue
        args = ("--notrack",) if port.notrack else ("--zone", str(port.zone))
        kind = ORIGIN_NOTRACK if port.notrack else ORIGIN_CONNTRACK_ZONE
        raw_rules.append(
            _rule(f"{P}-PREROUTING", Match(physdev_in=port.tap), CT, kind, port, target_args=args)
        )
    for port in ports:  # towards the VMs: by each port's qvb veth, as the compiler does
        if not port.port_security:
            continue
        args = ("--notrack",) if port.notrack else ("--zone", str(port.zone))
        kind = ORIGIN_NOTRACK if port.notrack else ORIGIN_CONNTRACK_ZONE
        qvb = Match(physdev_in="qvb" + port.id[:11])
        raw_rules.append(_rule(f"{P}-PREROUTING", qvb, CT, kind, port, target_args=args))
    raw = Table(
        "raw",
        (
            Chain(
                "PREROUTING",
                (_rule("PREROUTING", Match(), f"{P}-PREROUTING", ORIGIN_JUMP),),
                owned=False,
            ),
            Chain(f"{P}-PREROUTING", tuple(raw_rules)),
        ),
    )
    v4 = CompiledFamily(4, (Table("filter", tuple(chains)), raw))
    v6 = CompiledFamily(6, ())
    return CompiledHost(v4, v6, ipsets)


WEB = HandPort(
    "aaaaaaaa-1111-2222-3333-444444444444",
    "192.0.2.10",
    "fa:16:3e:00:00:10",
    ingress=[
        (
            Match(source="198.51.100.0/24", protocol="tcp", destination_port=PortRange(22, 22)),
            "r-ssh",
        ),
        (Match(protocol="icmp"), "r-icmp"),
        (Match(protocol="tcp", multiport_destination=PortRange(8000, 8080)), "r-range"),
        (Match(protocol="icmp", icmp_type=3, icmp_code=4), "r-frag"),
    ],
    egress=[(Match(protocol="6", destination="203.0.113.0/24"), "r-out")],
    extra_addresses=[("192.0.2.200", "fa:16:3e:00:00:99")],
)
DB = HandPort(
    "bbbbbbbb-1111-2222-3333-444444444444",
    "192.0.2.20",
    "fa:16:3e:00:00:20",
    ingress=[
        (
            Match(
                protocol="tcp",
                destination_port=PortRange(5432, 5432),
                match_set="IPv4web",
                match_set_direction="src",
            ),
            "r-pg",
        )
    ],
    zone=4098,
)
OPEN = HandPort(
    "cccccccc-1111-2222-3333-444444444444", "192.0.2.30", "fa:16:3e:00:00:30", port_security=False
)
STATELESS = HandPort(
    "dddddddd-1111-2222-3333-444444444444",
    "192.0.2.40",
    "fa:16:3e:00:00:40",
    ingress=[(Match(protocol="udp", destination_port=PortRange(53, 53)), "r-dns")],
    notrack=True,
)
SETS = (IpSet("IPv4web", "inet", ("192.0.2.10", "198.51.100.128/25"), "web"),)
HOST = hand_host([WEB, DB, OPEN, STATELESS], SETS)


def to_port(port: HandPort, **fields: object) -> Packet:
    defaults: dict[str, object] = {
        "dst": port.ip,
        "physdev_in": "qvb" + port.id[:11],
        "physdev_out": port.tap,
    }
    defaults.update(fields)
    return Packet(**defaults)  # type: ignore[arg-type]


def from_port(port: HandPort, **fields: object) -> Packet:
    defaults: dict[str, object] = {
        "src": port.ip,
        "src_mac": port.mac,
        "physdev_in": port.tap,
        "physdev_out": "qvb" + port.id[:11],
    }
    defaults.update(fields)
    return Packet(**defaults)  # type: ignore[arg-type]


def chains_hit(result) -> list[str]:
    return [hit.chain.removeprefix(P + "-") for hit in result.matched]


def test_ssh_from_the_allowed_prefix_returns_from_the_ingress_chain_and_is_accepted():
    result = trace(HOST, to_port(WEB, src="198.51.100.7", protocol="tcp", sport=40000, dport=22))
    assert result.verdict == ACCEPT
    assert chains_hit(result) == [
        "PREROUTING",
        "PREROUTING",
        "FORWARD",
        "neutron-filter-top",
        "FORWARD",
        "FORWARD",
        "sg-chain",
        "iaaaaaaaa-1",
        "sg-chain",
    ]
    ssh = [hit for hit in result.matched if hit.rule.origin.rule_id == "r-ssh"]
    assert ssh and ssh[0].key == (("filter", f"{P}-iaaaaaaaa-1", 4))
    assert result.deciding.rule.origin.kind == ORIGIN_ACCEPT_UNFILTERED
    assert result.zone == 4097  # towards the VM: the zone rule of its qvb


def test_unmatched_ingress_falls_to_the_fallback_drop():
    result = trace(HOST, to_port(WEB, src="203.0.113.5", protocol="tcp", dport=22))
    assert result.verdict == DROP
    assert result.deciding.chain == f"{P}-sg-fallback"
    assert result.matched[-2].rule.origin.kind == ORIGIN_FALLBACK
    assert result.matched[-2].rule.origin.port_id == WEB.id


def test_every_rule_tried_in_the_port_chain_is_in_the_path_in_order():
    result = trace(HOST, to_port(WEB, src="203.0.113.5", protocol="udp", dport=9))
    i_steps = [s.position for s in result.path if s.chain == f"{P}-iaaaaaaaa-1"]
    assert i_steps == list(range(1, 9))
    assert set(result.matched_keys) <= {(s.table, s.chain, s.position) for s in result.path}


def test_other_ports_jumps_are_skipped_but_counted():
    result = trace(HOST, to_port(DB, src="192.0.2.10", protocol="tcp", dport=5432))
    forward = [s for s in result.path if s.chain == f"{P}-FORWARD"]
    # WEB's two jumps come first in the chain and are skipped by the index.
    assert forward[0].position == 3 and forward[0].skipped == 2 and forward[0].matched


def test_remote_group_set_matches_members_and_cidr_members():
    allowed = trace(HOST, to_port(DB, src="192.0.2.10", protocol="tcp", dport=5432))
    in_cidr = trace(HOST, to_port(DB, src="198.51.100.200", protocol="tcp", dport=5432))
    outside = trace(HOST, to_port(DB, src="198.51.100.5", protocol="tcp", dport=5432))
    assert (allowed.verdict, in_cidr.verdict, outside.verdict) == (ACCEPT, ACCEPT, DROP)


def test_multiport_range_matches_both_edges_and_nothing_beyond():
    verdicts = {
        port: trace(HOST, to_port(WEB, src="203.0.113.1", protocol="tcp", dport=port)).verdict
        for port in (7999, 8000, 8080, 8081)
    }
    assert verdicts == {7999: DROP, 8000: ACCEPT, 8080: ACCEPT, 8081: DROP}


def test_protocol_names_and_numbers_are_equivalent():
    by_name = trace(HOST, from_port(WEB, dst="203.0.113.9", protocol="tcp", dport=443))
    by_number = trace(HOST, from_port(WEB, dst="203.0.113.9", protocol=6, dport=443))
    assert by_name.verdict == by_number.verdict == ACCEPT
    assert by_name.matched_keys == by_number.matched_keys


def test_icmp_type_and_code_must_both_match_when_the_rule_names_a_code():
    host = hand_host(
        [
            HandPort(
                WEB.id,
                WEB.ip,
                WEB.mac,
                ingress=[(Match(protocol="icmp", icmp_type=8, icmp_code=0), "r-echo")],
            )
        ]
    )
    # Types that open a connection, so that conntrack's verdict does not get in the way.
    echo = trace(host, to_port(WEB, src="203.0.113.1", protocol="icmp", icmp_type=8, icmp_code=0))
    other = trace(host, to_port(WEB, src="203.0.113.1", protocol="icmp", icmp_type=8, icmp_code=1))
    stamp = trace(host, to_port(WEB, src="203.0.113.1", protocol="icmp", icmp_type=13))
    assert (echo.verdict, other.verdict, stamp.verdict) == (ACCEPT, DROP, DROP)


def test_anti_spoofing_drops_a_forged_source_address():
    result = trace(
        HOST, from_port(WEB, src="192.0.2.11", dst="203.0.113.9", protocol="tcp", dport=80)
    )
    assert result.verdict == DROP
    assert result.deciding.chain == f"{P}-saaaaaaaa-1"
    assert result.deciding.rule.origin.kind == ORIGIN_ANTI_SPOOF


def test_anti_spoofing_drops_a_forged_mac_and_compares_macs_case_insensitively():
    forged = trace(
        HOST,
        from_port(WEB, src_mac="fa:16:3e:00:00:77", dst="203.0.113.9", protocol="tcp", dport=80),
    )
    upper = trace(
        HOST,
        from_port(WEB, src_mac="FA:16:3E:00:00:10", dst="203.0.113.9", protocol="tcp", dport=80),
    )
    assert forged.verdict == DROP and upper.verdict == ACCEPT


def test_allowed_address_pair_passes_anti_spoofing_with_its_own_mac():
    result = trace(
        HOST,
        from_port(
            WEB,
            src="192.0.2.200",
            src_mac="fa:16:3e:00:00:99",
            dst="203.0.113.9",
            protocol="tcp",
            dport=80,
        ),
    )
    assert result.verdict == ACCEPT
    assert [h.position for h in result.matched if h.chain == f"{P}-saaaaaaaa-1"] == [2]


def test_dhcp_request_leaves_before_anti_spoofing():
    result = trace(
        HOST,
        from_port(WEB, src="0.0.0.0", dst="255.255.255.255", protocol="udp", sport=68, dport=67),
    )
    assert result.verdict == ACCEPT
    assert not [h for h in result.matched if h.chain == f"{P}-saaaaaaaa-1"]


def test_dhcp_reply_from_the_subnet_server_is_let_in():
    result = trace(HOST, to_port(WEB, src="192.0.2.2", protocol="udp", sport=67, dport=68))
    assert result.verdict == ACCEPT
    assert ORIGIN_DHCP in [h.rule.origin.kind for h in result.matched]


def test_the_vm_acting_as_a_dhcp_server_is_dropped():
    result = trace(HOST, from_port(WEB, dst="192.0.2.55", protocol="udp", sport=67, dport=68))
    assert result.verdict == DROP
    assert result.deciding.rule.origin.kind == ORIGIN_DHCP_SPOOF


def test_established_reply_returns_early_and_invalid_is_dropped():
    reply = trace(
        HOST,
        to_port(
            WEB, src="203.0.113.9", protocol="tcp", sport=80, dport=41000, ct_state="established"
        ),
    )
    invalid = trace(
        HOST, to_port(WEB, src="198.51.100.7", protocol="tcp", dport=22, ct_state="INVALID")
    )
    assert reply.verdict == ACCEPT
    assert ORIGIN_ESTABLISHED in [h.rule.origin.kind for h in reply.matched]
    assert invalid.verdict == DROP and invalid.deciding.rule.origin.kind == ORIGIN_INVALID


def test_port_security_off_is_accepted_in_the_forward_chain():
    result = trace(HOST, to_port(OPEN, src="203.0.113.9", protocol="tcp", dport=25))
    assert result.verdict == ACCEPT
    assert result.deciding.rule.origin.kind == ORIGIN_PORT_SECURITY_OFF


def test_traffic_of_no_port_on_this_host_falls_through_to_the_forward_policy():
    result = trace(
        HOST,
        Packet(
            src="203.0.113.1",
            dst="198.51.100.1",
            protocol="tcp",
            dport=80,
            physdev_in="eth1",
            physdev_out="eth2",
        ),
    )
    assert result.verdict == ACCEPT
    assert result.deciding.event == STEP_POLICY and result.deciding.chain == "FORWARD"
    assert [s.event for s in result.path].count(STEP_RETURN) == 4  # raw, local, top, ours
    dropped = trace(HOST, Packet(src="203.0.113.1", dst="198.51.100.1"), policies={"FORWARD": DROP})
    assert dropped.verdict == DROP


def test_stateless_port_is_untracked_so_established_does_not_match():
    reply = trace(
        HOST,
        to_port(
            STATELESS,
            src="203.0.113.9",
            protocol="tcp",
            sport=80,
            dport=41000,
            ct_state="ESTABLISHED",
        ),
    )
    dns = trace(HOST, from_port(STATELESS, dst="203.0.113.9", protocol="udp", dport=53))
    assert dns.notrack and dns.ct_state == CT_UNTRACKED
    # The reply enters through the port's qvb, which is untracked too (Neutron's hybrid driver
    # sets the port's CT on both of its devices): it needs a rule of its own, and has none.
    assert reply.notrack and reply.ct_state == CT_UNTRACKED and reply.verdict == DROP
    invalid_out = trace(
        HOST, from_port(STATELESS, dst="203.0.113.9", protocol="tcp", dport=1, ct_state="INVALID")
    )
    assert invalid_out.verdict == DROP
    assert invalid_out.deciding.rule.origin.kind == ORIGIN_FALLBACK  # not the INVALID drop


def test_conntrack_zone_is_recorded_from_the_first_ct_rule():
    result = trace(HOST, from_port(DB, dst="203.0.113.9", protocol="tcp", dport=80))
    assert result.zone == 4098
    assert [h.rule.target for h in result.matched[:2]] == [f"{P}-PREROUTING", CT]


def test_input_jump_with_physdev_is_bridged_never_matches_delivered_packets():
    result = trace(
        HOST,
        Packet(
            src="192.0.2.11",
            dst="192.0.2.1",
            src_mac=WEB.mac,
            protocol="tcp",
            dport=22,
            physdev_in=WEB.tap,
            hook="INPUT",
        ),
    )
    assert result.verdict == ACCEPT
    assert not [h for h in result.matched if h.chain.startswith(f"{P}-o")]
    assert result.deciding.event == STEP_POLICY and result.deciding.chain == "INPUT"


def test_output_packets_carry_no_bridge_port():
    result = trace(HOST, Packet(src="192.0.2.1", dst=WEB.ip, physdev_in=WEB.tap, hook="output"))
    assert result.verdict == ACCEPT and result.matched == ()


def test_the_index_is_reusable_and_must_belong_to_the_host():
    index = prepare(HOST)
    packet = to_port(WEB, src="198.51.100.7", protocol="tcp", dport=22)
    assert trace(HOST, packet, index=index) == trace(HOST, packet)
    with pytest.raises(TraceError):
        trace(hand_host([WEB]), packet, index=index)


def test_packets_reject_mixed_families_and_bad_fields():
    with pytest.raises(TraceError):
        Packet(src="192.0.2.1", dst="2001:db8::1")
    with pytest.raises(TraceError):
        Packet(src="192.0.2.1", protocol="bogus")
    with pytest.raises(TraceError):
        Packet(dst="192.0.2.1", dport=70000)
    with pytest.raises(TraceError):
        Packet(dst="192.0.2.1", hook="INPUT", physdev_out="tapx")
    assert Packet(dst="2001:db8::1").family == 6


def test_a_jump_to_a_missing_chain_is_an_error_not_a_hang():
    broken = CompiledHost(
        CompiledFamily(
            4,
            (
                Table(
                    "filter",
                    (
                        Chain(
                            "FORWARD",
                            (_rule("FORWARD", Match(), "nowhere", ORIGIN_JUMP),),
                            owned=False,
                        ),
                    ),
                ),
            ),
        ),
        CompiledFamily(6, ()),
    )
    with pytest.raises(TraceError):
        trace(broken, Packet(dst="192.0.2.1"))
