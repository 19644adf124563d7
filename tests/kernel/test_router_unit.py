"""sgweb.kernel.router without a kernel: reading `conntrack -L` and ctnetlink entries as flows."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from sgweb.kernel.router import _count_lines, flow_of, parse_flows

LISTING_V4 = """\
tcp      6 431999 ESTABLISHED src=192.0.2.5 dst=198.51.100.11 sport=40312 dport=5432 \
src=198.51.100.11 dst=192.0.2.5 sport=5432 dport=40312 [ASSURED] mark=0 use=1
icmp     1 29 src=192.0.2.5 dst=198.51.100.11 type=8 code=0 id=4242 src=198.51.100.11 \
dst=192.0.2.5 type=0 code=0 id=4242 mark=0 use=1
"""
LISTING_V6 = """\
ipv6-icmp 58 29 src=2001:db8:1::5 dst=2001:db8:2::5 type=128 code=0 id=7 src=2001:db8:2::5 \
dst=2001:db8:1::5 type=129 code=0 id=7 mark=0 use=1
"""


def test_the_original_direction_of_each_entry_is_read() -> None:
    tcp, icmp = parse_flows(LISTING_V4, 4)
    assert (tcp.src, tcp.dst, tcp.sport, tcp.dport) == ("192.0.2.5", "198.51.100.11", 40312, 5432)
    assert (icmp.icmp_type, icmp.icmp_code, icmp.icmp_id) == (8, 0, 4242)
    assert tcp.packet().dport == 5432 and icmp.packet().is_icmp


def test_a_netlink_entry_becomes_the_flow_the_tracer_decides() -> None:
    tcp = SimpleNamespace(
        tuple_orig=NFCTAttrTuple(family=socket.AF_INET, saddr="192.0.2.5", daddr="198.51.100.11",
                                 proto=6, sport=40312, dport=5432)
    )  # fmt: skip
    assert flow_of(tcp, 4) == parse_flows(LISTING_V4, 4)[0]
    ping6 = SimpleNamespace(
        tuple_orig=NFCTAttrTuple(family=socket.AF_INET6, saddr="2001:db8:1:0::5",
                                 daddr="2001:db8:2::5", proto=58, icmp_type=128, icmp_code=0,
                                 icmp_id=7)
    )  # fmt: skip
    assert flow_of(ping6, 6) == parse_flows(LISTING_V6, 6)[0]
    gre = SimpleNamespace(
        tuple_orig=NFCTAttrTuple(family=socket.AF_INET, saddr="192.0.2.5", daddr="192.0.2.6",
                                 proto=47)
    )  # fmt: skip
    assert flow_of(gre, 4) is None  # the tracer does not decide it: left alone


def test_the_report_counts_rule_and_chain_lines_with_or_without_counters() -> None:
    text = "*filter\n:a - [0:0]\n[3:180] -A a -j ACCEPT\n-I b 2 -j DROP\n-D c 1\n-X d\nCOMMIT\n"
    assert _count_lines(text) == (3, 2)
