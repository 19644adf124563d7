"""IPv6 counters written back over netlink after a restore that carried them (issue 12).

`sgweb.kernel.carry` puts each surviving rule's count back with the restore's own syntax,
``[packets:bytes] -A CHAIN ...`` under `-c`. iptables-nft 1.8.9 (Debian 12) honours that for
IPv4 only: `ip6tables-restore -c`, `ip6tables -A ... -c P B` and `--set-counters` all leave an
IPv6 rule at zero (measured; the IPv6 command keeps the counts in a field its nf_tables
backend never reads). So after such a restore the counts are written here instead: each rule
that should start from a count is dumped, its `counter` expression given the count, and sent
back as NFT_MSG_NEWRULE with NLM_F_REPLACE on the same handle, all in one nf_tables batch
(one transaction: every rule replaced or none).

Positions: a chain the restore input declares (``:CHAIN``) is flushed and refilled by it, so
its n-th ``-A`` line is the kernel's n-th rule. A chain whose kernel rule count differs from
the input's (someone else's rules, a chain the input only appends to) is left alone: a wrong
count is worse than a reset one. Packets counted between the restore and the write-back (a
few milliseconds) are lost, as they are for IPv4 between the read and the restore.

Every read waits at most `NETLINK_TIMEOUT_S` for the kernel: the write-back runs inside the
agent's apply, and a read that never returned would hang it (and every apply after it); a
late answer is a `TimeoutError` (an OSError: the apply goes on, the counts start from zero).
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from sgweb.kernel.netns import in_netns
from sgweb.kernel.nftcounters import (
    NETLINK_NETFILTER,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HEADER,
    _rule_dump_request,
)
from sgweb.kernel.readback import Counter

NFT_MSG_NEWRULE = 6
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NFTA_RULE_POSITION = 6
_TYPE_MASK = 0x3FFF
# The counter expression as the kernel dumps it (see `nftcounters`): its name, then the data
# attribute (28 bytes) with NFTA_COUNTER_BYTES and NFTA_COUNTER_PACKETS, big-endian u64 each.
_COUNTER = b"counter\0\x1c\x00\x02\x00\x0c\x00\x01\x00"
_PACKETS_HEADER = b"\x0c\x00\x02\x00"
# The kernel answers a dump or a batch of one chain's rules in well under a millisecond; five
# seconds is a kernel (or a namespace) in trouble, not a slow one.
NETLINK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ChainCounts:
    """The counts one chain's rules should start from, by position (0-based)."""

    table: str
    chain: str
    rule_count: int  # how many rules the restore input gives the chain
    counts: tuple[tuple[int, Counter], ...]


def counts_in(restore_text: str) -> list[ChainCounts]:
    """Every declared chain of the input that has at least one ``[p:b]`` rule."""
    declared: set[tuple[str, str]] = set()
    rules: dict[tuple[str, str], int] = {}
    counts: dict[tuple[str, str], list[tuple[int, Counter]]] = {}
    table = ""
    for line in restore_text.split("\n"):
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith(":"):
            declared.add((table, line[1:].split(" ", 1)[0]))
        elif line.startswith("-A ") or line.startswith("["):
            prefix, rule = line.split(" ", 1) if line.startswith("[") else ("", line)
            if not rule.startswith("-A "):
                continue
            key = (table, rule.split(" ", 2)[1])
            position = rules.get(key, 0)
            rules[key] = position + 1
            if prefix:
                packets, size = prefix.strip("[]").split(":")
                if packets != "0" or size != "0":
                    counts.setdefault(key, []).append((position, Counter(int(packets), int(size))))
    return [
        ChainCounts(table, chain, rules[(table, chain)], tuple(found))
        for (table, chain), found in counts.items()
        if (table, chain) in declared
    ]


def with_count(rule_message: bytes, counter: Counter) -> bytes | None:
    """The rule's attributes (after nfgenmsg) with its counter set; None if it has none."""
    at = rule_message.find(_COUNTER)
    if at < 0:
        return None
    values = at + len(_COUNTER)
    if rule_message[values + 8 : values + 12] != _PACKETS_HEADER:
        return None
    return (
        rule_message[:values]
        + counter.bytes.to_bytes(8, "big")
        + _PACKETS_HEADER
        + counter.packets.to_bytes(8, "big")
        + rule_message[values + 20 :]
    )


def _without_position(attributes: bytes) -> bytes:
    """The attributes minus NFTA_RULE_POSITION (a dump reports it; a replace names the handle)."""
    out = bytearray()
    offset = 0
    while offset + 4 <= len(attributes):
        length, kind = struct.unpack_from("=HH", attributes, offset)
        if length < 4:
            break
        step = (length + 3) & ~3
        if kind & _TYPE_MASK != NFTA_RULE_POSITION:
            out += attributes[offset : offset + step]
        offset += step
    return bytes(out)


class CounterWriter:
    """One netlink socket in a namespace; `write` puts counts back on rules of one family."""

    def __init__(self, netns: str | None, timeout_s: float | None = None) -> None:
        self.netns = netns
        self.timeout_s = NETLINK_TIMEOUT_S if timeout_s is None else timeout_s
        self._sequence = 0

    def _open(self) -> socket.socket:
        sock = in_netns(
            self.netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((0, 0))
        return sock

    def _socket(self) -> socket.socket:
        sock = self._open()
        sock.settimeout(self.timeout_s)
        return sock

    def _receive(self, sock: socket.socket, what: str) -> bytes:
        try:
            return sock.recv(1 << 20)
        except TimeoutError:
            where = f"namespace {self.netns}" if self.netns else "the root namespace"
            raise TimeoutError(
                f"nf_tables did not answer the {what} in {where} within {self.timeout_s:g} s"
            ) from None

    def _next(self) -> int:
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        return self._sequence

    def write(self, family: int, chains: list[ChainCounts]) -> int:
        """Set the counts; returns how many rules were given theirs. Raises OSError when the
        kernel refuses the batch (then no rule changed: one transaction)."""
        if not chains:
            return 0
        with self._socket() as sock:
            replacements: list[bytes] = []
            for chain in chains:
                rules = self._dump(sock, family, chain.table, chain.chain)
                if len(rules) != chain.rule_count:
                    continue  # not the chain the input declared: leave it at zero
                for position, counter in chain.counts:
                    changed = with_count(rules[position], counter)
                    if changed is not None:
                        replacements.append(_without_position(changed))
            if replacements:
                self._replace(sock, family, replacements)
            return len(replacements)

    def _dump(self, sock: socket.socket, family: int, table: str, chain: str) -> list[bytes]:
        """Each rule's attributes (after nfgenmsg), in chain order."""
        sequence = self._next()
        sock.send(_rule_dump_request(chain, family, table, sequence))
        rules: list[bytes] = []
        while True:
            data = self._receive(sock, f"rule dump of {chain}")
            offset = 0
            while offset + NLMSG_HEADER <= len(data):
                length, kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
                start, offset = offset, offset + ((length + 3) & ~3)
                if length < NLMSG_HEADER or seq != sequence:
                    continue
                if kind == NLMSG_DONE:
                    return rules
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, start + NLMSG_HEADER)[0]
                    if code in (0, errno.ENOENT):
                        return rules if code == 0 else []
                    raise OSError(code, f"nf_tables rule dump of {chain}")
                rules.append(data[start + NLMSG_HEADER + 4 : start + length])

    def _replace(self, sock: socket.socket, family: int, rules: list[bytes]) -> None:
        kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE
        batch_header = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
        rule_header = struct.pack("=BBH", NFPROTO[family], 0, 0)
        begin = self._next()
        messages = [_message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, begin, batch_header)]
        waiting: set[int] = set()
        for attributes in rules:
            sequence = self._next()
            waiting.add(sequence)
            flags = NLM_F_REQUEST | NLM_F_REPLACE | NLM_F_ACK
            messages.append(_message(kind, flags, sequence, rule_header + attributes))
        messages.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, self._next(), batch_header))
        sock.send(b"".join(messages))
        while waiting:
            data = self._receive(sock, "counters' write-back")
            offset = 0
            while offset + NLMSG_HEADER <= len(data):
                length, message_kind, _flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
                start, offset = offset, offset + ((length + 3) & ~3)
                if message_kind != NLMSG_ERROR:
                    continue
                code = -struct.unpack_from("=i", data, start + NLMSG_HEADER)[0]
                if code:
                    raise OSError(code, "nf_tables refused the counters' write-back")
                waiting.discard(seq)


def _message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", NLMSG_HEADER + len(body), kind, flags, sequence, 0) + body


def write_back(netns: str | None, family: int, restore_text: str) -> int:
    """After a successful restore of `restore_text`: give its IPv6 rules their ``[p:b]`` counts
    (IPv4's restore already did). Returns how many rules got theirs."""
    if family != 6:
        return 0
    return CounterWriter(netns).write(family, counts_in(restore_text))
