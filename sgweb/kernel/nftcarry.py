"""IPv6 counters written back over netlink after a restore that carried them (issue 12).

`sgweb.kernel.carry` puts each surviving rule's count back with the restore's own syntax,
``[packets:bytes] -A CHAIN ...`` under `-c`. iptables-nft 1.8.9 (Debian 12) honours that for
IPv4 only: `ip6tables-restore -c`, `ip6tables -A ... -c P B` and `--set-counters` all leave an
IPv6 rule at zero (measured; the IPv6 command keeps the counts in a field its nf_tables
backend never reads). So after such a restore the counts are written here instead: each rule
that should start from a count is dumped, its `counter` expression given the count, and sent
back as NFT_MSG_NEWRULE with NLM_F_REPLACE on the same handle, all in one nf_tables batch
(one transaction: every rule replaced or none).

What the dump leaves out: NFTA_RULE_COMPAT, the rule's `-p` as x_tables sees it. iptables-nft
sends it with every rule it adds; the kernel hands it to the rule's xt matches and targets to
check, then forgets it. `-m icmp6` (every port chain's neighbour discovery rules) and
`-m multiport` refuse a rule without their protocol, so a replace as dumped is EINVAL and the
whole batch with it. `rule_protocol` reads the `-p` back from the rule's own expressions
(`meta l4proto`, then a `cmp` on that register, as iptables-nft writes it) and the replacement
carries it as iptables-nft would have.

Size: every rule with a count is one message of ~470 bytes in one batch (a 1000-port host's IPv6
rules are megabytes), and netlink refuses a message longer than the socket's send buffer
(212,992 bytes by default) with EMSGSIZE. `_fit_send_buffer` raises the buffer to the batch, as
nft does (`mnl_set_sndbuffer`: SO_SNDBUFFORCE, which a root agent may use), so the transaction
stays one. Only the batch's last message asks for an acknowledgement: the kernel answers every
refused message anyway, and tens of thousands of acknowledgements would overflow the receive
buffer (ENOBUFS) after a batch that went in.

Positions: a chain the restore input declares (``:CHAIN``) is flushed and refilled by it, so
its n-th ``-A`` line is the kernel's n-th rule; so is every chain of a table restored whole
(without `--noflush`: the built-in chains' jumps too, which the input does not declare). A
chain whose kernel rule count differs from the input's (someone else's rules, a chain the input
only appends to) is left alone: a wrong count is worse than a reset one. Packets counted
between the restore and the write-back (milliseconds; ~0.6 s for every rule of a busy 1000-port
host) are lost, as they are for IPv4 between the read and the restore.

Every read waits at most `NETLINK_TIMEOUT_S` for the kernel: the write-back runs inside the
agent's apply, and a read that never returned would hang it (and every apply after it); a
late answer is a `TimeoutError` (an OSError: the apply goes on, the counts start from zero).
"""

from __future__ import annotations

import errno
import itertools
import re
import socket
import struct
from dataclasses import dataclass

from sgweb.kernel.netns import in_netns
from sgweb.kernel.nftcounters import (
    NETLINK_NETFILTER,
    NFNL_SUBSYS_NFTABLES,
    NFPROTO,
    NFTA_EXPR_DATA,
    NFTA_EXPR_NAME,
    NFTA_RULE_EXPRESSIONS,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HEADER,
    _attribute,
    _rule_dump_request,
    attributes,
)
from sgweb.kernel.readback import Counter

NFT_MSG_NEWRULE = 6
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NFTA_RULE_COMPAT = 5
NFTA_RULE_POSITION = 6
NFTA_RULE_COMPAT_PROTO = 1
NFTA_RULE_COMPAT_FLAGS = 2
NFT_RULE_COMPAT_F_INV = 1 << 1
NLA_F_NESTED = 0x8000
NFTA_META_DREG = 1
NFTA_META_KEY = 2
NFT_META_L4PROTO = 16
NFTA_CMP_SREG = 1
NFTA_CMP_OP = 2
NFTA_CMP_DATA = 3
NFTA_DATA_VALUE = 1
NFT_CMP_EQ = 0
NFT_CMP_NEQ = 1
# Not every Python names it (Linux's value); SO_SNDBUF alone is capped by net.core.wmem_max.
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)
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


def counts_in(restore_text: str, *, whole_tables: bool = False) -> list[ChainCounts]:
    """Every declared chain of the input (every chain, when the input was restored without
    `--noflush`) that has at least one ``[p:b]`` rule."""
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
        if whole_tables or (table, chain) in declared
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


def _u32(value: bytes | None) -> int | None:
    return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None


def _expressions(rule: bytes) -> list[tuple[bytes, dict[int, bytes]]]:
    """The rule's expressions in order: (name, {attribute: value} of its data)."""
    out: list[tuple[bytes, dict[int, bytes]]] = []
    for kind, value in attributes(rule):
        if kind != NFTA_RULE_EXPRESSIONS:
            continue
        for _element, expression in attributes(value):
            fields = dict(attributes(expression))
            name = fields.get(NFTA_EXPR_NAME, b"").rstrip(b"\0")
            out.append((name, dict(attributes(fields.get(NFTA_EXPR_DATA, b"")))))
    return out


# `meta l4proto => reg R` then `cmp eq|neq reg R <1 byte>`, as the kernel dumps them: the
# shortcut for `rule_protocol` (~2 us a rule against ~20 us for the walk; a busy 1000-port host
# carries tens of thousands of IPv6 counts). Anything else is walked.
_L4PROTO = re.compile(
    rb"\x09\x00\x01\x00meta\x00\x00\x00\x00\x14\x00\x02\x00\x08\x00\x02\x00\x00\x00\x00\x10"
    rb"\x08\x00\x01\x00(.{4}).{4}\x08\x00\x01\x00cmp\x00\x20\x00\x02\x00\x08\x00\x01\x00\1"
    rb"\x08\x00\x02\x00\x00\x00\x00([\x00\x01])\x0c\x00\x03\x00\x05\x00\x01\x00(.)",
    re.DOTALL,
)


def rule_protocol(rule: bytes) -> tuple[int, bool]:
    """The rule's `-p` as iptables-nft wrote it, (protocol, inverted); (0, False) if it has none.

    iptables-nft writes `-p` as `meta l4proto` into a register and an `eq` (`! -p`: `neq`)
    comparison of that register right after it; any other shape is not a `-p` of ours."""
    quick = _L4PROTO.search(rule)
    if quick is not None:
        return quick.group(3)[0], quick.group(2) == b"\x01"
    if b"meta\0" not in rule:
        return 0, False
    found = _expressions(rule)
    for (name, data), (next_name, compared) in itertools.pairwise(found):
        if name != b"meta" or _u32(data.get(NFTA_META_KEY)) != NFT_META_L4PROTO:
            continue
        register = _u32(data.get(NFTA_META_DREG))
        operation = _u32(compared.get(NFTA_CMP_OP))
        value = dict(attributes(compared.get(NFTA_CMP_DATA, b""))).get(NFTA_DATA_VALUE, b"")
        if (
            next_name == b"cmp"
            and register is not None
            and _u32(compared.get(NFTA_CMP_SREG)) == register
            and operation in (NFT_CMP_EQ, NFT_CMP_NEQ)
            and len(value) == 1
        ):
            return value[0], operation == NFT_CMP_NEQ
    return 0, False


def compat(protocol: int, inverted: bool) -> bytes:
    """NFTA_RULE_COMPAT as iptables-nft sends it with every rule (`add_compat`)."""
    flags = NFT_RULE_COMPAT_F_INV if inverted else 0
    nested = _attribute(NFTA_RULE_COMPAT_PROTO, protocol.to_bytes(4, "big")) + _attribute(
        NFTA_RULE_COMPAT_FLAGS, flags.to_bytes(4, "big")
    )
    return _attribute(NFTA_RULE_COMPAT | NLA_F_NESTED, nested)


def for_replace(rule: bytes) -> bytes:
    """A dumped rule's attributes as a replace on its handle needs them: without
    NFTA_RULE_POSITION (a dump reports it; the handle names the rule) and with the
    NFTA_RULE_COMPAT the dump lacks (its xt matches check their protocol against it)."""
    out = bytearray()
    offset = 0
    while offset + 4 <= len(rule):
        length, kind = struct.unpack_from("=HH", rule, offset)
        if length < 4:
            break
        step = (length + 3) & ~3
        if kind & _TYPE_MASK not in (NFTA_RULE_POSITION, NFTA_RULE_COMPAT):
            out += rule[offset : offset + step]
        offset += step
    return bytes(out) + compat(*rule_protocol(rule))


def _fit_send_buffer(sock: socket.socket, size: int) -> None:
    """Let one `send` of `size` bytes through (netlink refuses a message longer than the send
    buffer less 32 bytes with EMSGSIZE; the kernel doubles the value it is given)."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 32 >= size:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
    except PermissionError:  # not root: as far as net.core.wmem_max lets it
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


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
                        replacements.append(for_replace(changed))
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
        last = len(rules) - 1
        sequence = begin
        for index, rule in enumerate(rules):
            sequence = self._next()
            flags = NLM_F_REQUEST | NLM_F_REPLACE | (NLM_F_ACK if index == last else 0)
            messages.append(_message(kind, flags, sequence, rule_header + rule))
        acknowledged = sequence  # the kernel answers after the whole batch, refusals first
        messages.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, self._next(), batch_header))
        batch = b"".join(messages)
        _fit_send_buffer(sock, len(batch))
        sock.send(batch)
        while True:
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
                if seq == acknowledged:
                    return


def _message(kind: int, flags: int, sequence: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", NLMSG_HEADER + len(body), kind, flags, sequence, 0) + body


def write_back(
    netns: str | None, family: int, restore_text: str, *, whole_tables: bool = False
) -> int:
    """After a successful restore of `restore_text` (`whole_tables`: without `--noflush`): give
    its IPv6 rules their ``[p:b]`` counts (IPv4's restore already did). Returns how many rules
    got theirs."""
    if family != 6:
        return 0
    return CounterWriter(netns).write(family, counts_in(restore_text, whole_tables=whole_tables))
