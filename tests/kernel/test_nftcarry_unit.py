"""The IPv6 counter write-back's pure parts: which counts go where, and the patched rule."""

from __future__ import annotations

import struct

from sgweb.kernel.nftcarry import ChainCounts, counts_in, with_count
from sgweb.kernel.readback import Counter

RESTORE = """*filter
:FORWARD ACCEPT [0:0]
:neutron-openvswi-i1 - [0:0]
[5:400] -A FORWARD -j neutron-filter-top
[7:700] -A neutron-openvswi-i1 -m state --state RELATED,ESTABLISHED -j RETURN
-A neutron-openvswi-i1 -p tcp -j RETURN
[0:0] -A neutron-openvswi-i1 -p udp -j RETURN
[3:300] -A neutron-openvswi-i1 -j DROP
COMMIT
*raw
[2:20] -A PREROUTING -j CT --zone 1
COMMIT
"""


def test_counts_go_to_the_positions_of_their_lines_in_declared_chains_only() -> None:
    assert counts_in(RESTORE) == [
        ChainCounts("filter", "FORWARD", 1, ((0, Counter(5, 400)),)),
        ChainCounts(
            "filter", "neutron-openvswi-i1", 4, ((0, Counter(7, 700)), (3, Counter(3, 300)))
        ),
    ]  # raw PREROUTING is only appended to: its positions are not ours to know


def _counter_rule(packets: int, size: int) -> bytes:
    data = struct.pack("=HH", 12, 1) + size.to_bytes(8, "big")
    data += struct.pack("=HH", 12, 2) + packets.to_bytes(8, "big")
    element = struct.pack("=HH", 12, 1) + b"counter\0" + struct.pack("=HH", 28, 2) + data
    expressions = struct.pack("=HH", 4 + 4 + len(element), 4)
    expressions += struct.pack("=HH", 4 + len(element), 1) + element
    table = struct.pack("=HH", 11, 1) + b"filter\0" + b"\0"
    return table + expressions


def test_a_rule_gets_the_count_in_its_counter_expression_and_nothing_else_changes() -> None:
    rule = _counter_rule(0, 0)
    changed = with_count(rule, Counter(packets=9, bytes=1234))
    assert changed == _counter_rule(9, 1234)
    assert len(changed) == len(rule)


def test_a_rule_without_a_counter_expression_is_left_alone() -> None:
    assert with_count(b"\x0b\x00\x01\x00filter\x00\x00", Counter(1, 1)) is None
