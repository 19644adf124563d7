"""sgweb.kernel.router without a kernel: `conntrack -L` text and ctnetlink entries as flows."""

from __future__ import annotations

import socket
import struct

import pytest

from sgweb.kernel import ctnetlink
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


def _nested(kind: int, *parts: bytes) -> bytes:
    return ctnetlink._attribute(kind | 0x8000, b"".join(parts))


def _dumped(family: int, src: bytes, dst: bytes, proto: bytes, zone: int | None = None) -> bytes:
    """A dump message's body as the kernel writes it: the original tuple, then the zone."""
    ip_kinds = (1, 2) if family == 4 else (3, 4)
    body = _nested(
        ctnetlink.CTA_TUPLE_ORIG,
        _nested(ctnetlink.CTA_TUPLE_IP, ctnetlink._attribute(ip_kinds[0], src),
                ctnetlink._attribute(ip_kinds[1], dst)),
        _nested(ctnetlink.CTA_TUPLE_PROTO, proto),
    )  # fmt: skip
    if zone is not None:
        body += ctnetlink._attribute(ctnetlink.CTA_ZONE, struct.pack("!H", zone))
    return body


def _attributes(*pairs: tuple[int, bytes]) -> bytes:
    return b"".join(ctnetlink._attribute(kind, payload) for kind, payload in pairs)


def _addresses(family: int, src: str, dst: str) -> tuple[bytes, bytes]:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    return socket.inet_pton(af, src), socket.inet_pton(af, dst)


def test_a_dumped_entry_becomes_the_flow_the_tracer_decides() -> None:
    port = struct.Struct("!H").pack
    tcp_proto = _attributes((1, bytes([6])), (2, port(40312)), (3, port(5432)))
    v4 = _addresses(4, "192.0.2.5", "198.51.100.11")
    tcp = ctnetlink.tracked_of(4, _dumped(4, *v4, tcp_proto, zone=4097))
    assert tcp is not None and flow_of(tcp) == parse_flows(LISTING_V4, 4)[0]
    # The delete names the very tuple and zone that were dumped.
    assert tcp.key == _dumped(4, *v4, tcp_proto, zone=4097)
    ping_proto = _attributes((1, bytes([58])), (7, port(7)), (8, bytes([128])), (9, bytes([0])))
    v6 = _addresses(6, "2001:db8:1::5", "2001:db8:2::5")
    ping6 = ctnetlink.tracked_of(6, _dumped(6, *v6, ping_proto))
    assert ping6 is not None and flow_of(ping6) == parse_flows(LISTING_V6, 6)[0]
    gre = ctnetlink.tracked_of(4, _dumped(4, *v4, _attributes((1, bytes([47])))))
    assert gre is not None and flow_of(gre) is None  # the tracer does not decide it: left alone
    assert ctnetlink.tracked_of(4, b"") is None


def test_the_report_counts_rule_and_chain_lines_with_or_without_counters() -> None:
    text = "*filter\n:a - [0:0]\n[3:180] -A a -j ACCEPT\n-I b 2 -j DROP\n-D c 1\n-X d\nCOMMIT\n"
    assert _count_lines(text) == (3, 2)


def test_a_table_that_never_answers_is_a_clear_timeout_and_a_failed_delete_not_a_hang() -> None:
    ours, kernel = socket.socketpair()  # the "kernel" end reads nothing and says nothing
    ours.settimeout(0.1)
    table = ctnetlink.ConntrackTable("sgwt-router", timeout_s=0.1)
    table._sock = ours
    said = r"did not answer the IPv4 dump in sgwt-router within 0\.1 s"
    with pytest.raises(TimeoutError, match=said):
        table.entries(4)
    entry = ctnetlink.Tracked(4, 6, "192.0.2.5", "198.51.100.11", 1, 2, None, None, None, b"")
    assert "did not answer the delete" in (table.delete(entry) or "")
    table.close()
    kernel.close()
