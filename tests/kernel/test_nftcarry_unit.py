"""The IPv6 counter write-back's pure parts: which counts go where, and the patched rule."""

from __future__ import annotations

import re
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


def test_a_table_restored_whole_gives_every_chain_its_positions_the_built_in_ones_too() -> None:
    chains = {(c.table, c.chain): c for c in counts_in(RESTORE, whole_tables=True)}
    assert chains[("raw", "PREROUTING")] == ChainCounts(
        "raw", "PREROUTING", 1, ((0, Counter(2, 20)),)
    )
    assert len(chains) == 3


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


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def _expression(name: bytes, *fields: tuple[int, bytes]) -> bytes:
    data = b"".join(_attr(kind, value) for kind, value in fields)
    return _attr(1, _attr(1, name + b"\0") + _attr(2, data))


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _dumped_rule(*expressions: bytes, position: int | None = 7) -> bytes:
    """A rule as the kernel dumps it (table, chain, handle, position, expressions)."""
    head = _attr(1, b"filter\0") + _attr(2, b"sg-in\0") + _attr(3, (9).to_bytes(8, "big"))
    if position is not None:
        head += _attr(6, position.to_bytes(8, "big"))
    return head + _attr(4, b"".join(expressions))


def _l4proto(protocol: int, operation: int = 0, register: int = 1) -> tuple[bytes, bytes]:
    meta = _expression(b"meta", (2, _u32(16)), (1, _u32(register)))  # key, then dreg
    cmp = _expression(b"cmp", (1, _u32(register)), (2, _u32(operation)),
                      (3, _attr(1, bytes([protocol]))))  # fmt: skip
    return meta, cmp


ICMP6_MATCH = _expression(b"match", (1, b"icmp6\0"), (2, _u32(0)), (3, b"\x80\x00\xff"))
COUNTER = _expression(b"counter", (1, bytes(8)), (2, bytes(8)))


@pytest.mark.parametrize(("operation", "inverted"), [(0, False), (1, True)], ids=["-p", "! -p"])
def test_a_rules_protocol_is_read_back_from_its_meta_l4proto_comparison(
    operation: int, inverted: bool
) -> None:
    rule = _dumped_rule(*_l4proto(58, operation), ICMP6_MATCH, COUNTER)
    assert nftcarry.rule_protocol(rule) == (58, inverted)


def test_the_walk_reads_the_same_protocol_as_the_shortcut(monkeypatch) -> None:
    rules = [_dumped_rule(*_l4proto(p, op), ICMP6_MATCH, COUNTER) for p in (6, 17, 58)
             for op in (0, 1)]  # fmt: skip
    assert all(nftcarry._L4PROTO.search(rule) for rule in rules)  # the shortcut's encoding
    quick = [nftcarry.rule_protocol(rule) for rule in rules]
    monkeypatch.setattr(nftcarry, "_L4PROTO", re.compile(b"(?!)"))
    assert [nftcarry.rule_protocol(rule) for rule in rules] == quick


def test_a_rule_without_a_protocol_or_with_another_shape_has_protocol_zero() -> None:
    assert nftcarry.rule_protocol(_dumped_rule(COUNTER)) == (0, False)
    meta, cmp = _l4proto(6)
    other_register = _expression(b"cmp", (1, _u32(2)), (2, _u32(0)), (3, _attr(1, b"\x06")))
    assert nftcarry.rule_protocol(_dumped_rule(meta, other_register, COUNTER)) == (0, False)
    assert nftcarry.rule_protocol(_dumped_rule(meta, COUNTER, cmp)) == (0, False)


def test_a_replacement_names_its_handle_without_a_position_and_carries_the_compat_protocol() -> (
    None
):
    rule = _dumped_rule(*_l4proto(58, 1), ICMP6_MATCH, COUNTER)
    compat = _attr(5 | 0x8000, _attr(1, _u32(58)) + _attr(2, _u32(2)))  # proto 58, inverted
    assert (
        nftcarry.for_replace(rule)
        == _dumped_rule(*_l4proto(58, 1), ICMP6_MATCH, COUNTER, position=None) + compat
    )
    assert nftcarry.for_replace(nftcarry.for_replace(rule)) == nftcarry.for_replace(rule)
