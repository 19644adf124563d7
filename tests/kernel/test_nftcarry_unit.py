"""The IPv6 counter write-back's pure parts: which counts go where, and the patched rule."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from sgweb.kernel import nftcarry
from sgweb.kernel.carry import carry_ipv6_counters
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


def test_a_kernel_that_never_answers_the_dump_is_a_clear_timeout_not_a_hang(monkeypatch) -> None:
    silent: list[socket.socket] = []  # the "kernel" ends: they read nothing and say nothing

    def never_answered(self: nftcarry.CounterWriter) -> socket.socket:
        ours, kernel = socket.socketpair()
        silent.append(kernel)
        return ours

    monkeypatch.setattr(nftcarry.CounterWriter, "_open", never_answered)
    monkeypatch.setattr(nftcarry, "NETLINK_TIMEOUT_S", 0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not answer the rule dump of FORWARD "
                       r"in namespace sgwt-h1 within 0\.2 s"):  # fmt: skip
        nftcarry.write_back("sgwt-h1", 6, RESTORE)
    assert time.monotonic() - started < 5
    # The apply goes on: the counts start from zero, with a warning that says why.
    (warning,) = carry_ipv6_counters("sgwt-h1", 6, RESTORE)
    assert "IPv6 counters were not carried over" in warning and "did not answer" in warning
    for kernel in silent:
        kernel.close()


def test_a_kernel_that_never_acknowledges_the_write_back_is_a_timeout_too() -> None:
    ours, kernel = socket.socketpair()
    writer = nftcarry.CounterWriter("sgwt-h1", timeout_s=0.1)
    ours.settimeout(0.1)
    with pytest.raises(TimeoutError, match="counters' write-back"):
        writer._replace(ours, 6, [b"rule"])
    ours.close()
    kernel.close()
