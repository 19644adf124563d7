"""Per-rule counters of a few chains straight from nf_tables over netlink (no process per chain).

`iptables -L CHAIN -v -x -n` costs a process and a couple of milliseconds per chain; a page
watching 50 ports is 300 chains, a second of CPU per tick. The kernel answers a rule dump
filtered by table and chain (NFT_MSG_GETRULE with NLM_F_DUMP) in microseconds, and every rule
iptables-nft writes carries a `counter` expression, in chain order: the n-th counter is the
n-th rule's, the same positions `iptables -L` shows.

Hand-written rather than pyroute2's `nft_rule_msg` (which the brief prefers for netlink): its
decode of every attribute of a rule costs ~120 us a rule (measured on the dumps of a 1000-port
host: 7 s for its 57,000 rules, every reading), the search of whole buffers for the counter's
fixed encoding (`counter_pairs`) 0.5 us, and the requests and sockets are a few lines.

Only for the nf_tables backend (what this project targets); `available()` says whether the
socket could be opened, and callers fall back to `KernelReadback.read_chains` otherwise. The
socket is opened inside the namespace (`netns.in_netns`: a short-lived thread enters it), and a
netlink socket belongs to the namespace it was created in for good, so reads need no namespace
switching.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sgweb.kernel.netns import in_netns
from sgweb.kernel.readback import Counter

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETRULE = 7
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_COUNTER_BYTES = 1
NFTA_COUNTER_PACKETS = 2
NFPROTO = {4: 2, 6: 10}
_TYPE_MASK = 0x3FFF


def attributes(data: bytes) -> Iterable[tuple[int, bytes]]:
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            return
        yield kind & _TYPE_MASK, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def _attribute(name: int, value: bytes) -> bytes:
    header = struct.pack("=HH", 4 + len(value), name)
    padding = b"\0" * (((len(value) + 3) & ~3) - len(value))
    return header + value + padding


# The attribute that names a counter expression: length 12, NFTA_EXPR_NAME, "counter\0". The
# expression's data attribute follows it (nla_put order in nft_expr_dump).
_COUNTER_NAME = struct.pack("=HH", 12, NFTA_EXPR_NAME) + b"counter\0"
_ZERO = Counter(0, 0)


def rule_counter(payload: bytes) -> Counter | None:
    """The counter expression of one NEWRULE message's attributes (after nfgenmsg).

    The live thread reads a few thousand rules a tick, so the usual case takes a shortcut: find
    the counter's name attribute and read the data attribute after it; anything unexpected
    there falls back to walking every attribute."""
    at = payload.find(_COUNTER_NAME)
    if at >= 0:
        data_at = at + len(_COUNTER_NAME)
        if data_at + 4 <= len(payload):
            length, kind = struct.unpack_from("=HH", payload, data_at)
            if kind & _TYPE_MASK == NFTA_EXPR_DATA:
                packets = size = None
                for field, value in attributes(payload[data_at + 4 : data_at + length]):
                    if field == NFTA_COUNTER_PACKETS and len(value) == 8:
                        packets = struct.unpack(">Q", value)[0]
                    elif field == NFTA_COUNTER_BYTES and len(value) == 8:
                        size = struct.unpack(">Q", value)[0]
                if packets is not None and size is not None:
                    return Counter(packets, size)
    return _walked_rule_counter(payload)


def _walked_rule_counter(payload: bytes) -> Counter | None:
    for kind, value in attributes(payload):
        if kind != NFTA_RULE_EXPRESSIONS:
            continue
        for element_kind, element in attributes(value):
            if element_kind != NFTA_LIST_ELEM:
                continue
            fields = dict(attributes(element))
            if fields.get(NFTA_EXPR_NAME, b"").rstrip(b"\0") != b"counter":
                continue
            counter = dict(attributes(fields.get(NFTA_EXPR_DATA, b"")))
            packets = struct.unpack(">Q", counter.get(NFTA_COUNTER_PACKETS, bytes(8)))[0]
            size = struct.unpack(">Q", counter.get(NFTA_COUNTER_BYTES, bytes(8)))[0]
            return Counter(packets, size)
    return None


# The counter expression as the kernel dumps it: NFTA_EXPR_NAME "counter", then NFTA_EXPR_DATA
# (28 bytes) holding NFTA_COUNTER_BYTES and NFTA_COUNTER_PACKETS, both big-endian u64.
_COUNTER_NAME = b"counter\0"
_COUNTER_DATA = b"\x1c\x00\x02\x00\x0c\x00\x01\x00"
_COUNTER_PACKETS = b"\x0c\x00\x02\x00"


def _counter_at(data: bytes, start: int, end: int) -> Counter | None:
    """The counter of the rule message in data[start:end], found by its encoding; None if it is
    not there in that shape (then the caller parses the attributes)."""
    at = data.find(_COUNTER_NAME, start, end)
    while at >= 0:
        body = at + len(_COUNTER_NAME)
        if (
            data[body : body + 8] == _COUNTER_DATA
            and data[body + 16 : body + 20] == _COUNTER_PACKETS
            and body + 28 <= end
        ):
            size = int.from_bytes(data[body + 8 : body + 16], "big")
            packets = int.from_bytes(data[body + 20 : body + 28], "big")
            return Counter(packets, size)
        at = data.find(_COUNTER_NAME, body, end)  # "counter" inside a comment, say
    return None


# Every counter expression of a dump at once (the accounting reads every rule of a host): the
# encoding above, its two values captured as one 20-byte piece that `_PAIR` unpacks in C. The
# pattern starts at the name attribute's header (12, NFTA_EXPR_NAME): the regex engine scans for
# its first byte, and 0x0c is rarer in a dump than the "c" of "counter" (13 MB of dump, every
# IPv4 rule of a 1000-port host: 8 ms instead of 13).
_COUNTERS = re.compile(
    re.escape(struct.pack("=HH", 12, NFTA_EXPR_NAME) + _COUNTER_NAME + _COUNTER_DATA)
    + rb"(.{8}\x0c\x00\x02\x00.{8})",
    re.DOTALL,
)
_PAIR = struct.Struct(">Q4xQ")  # bytes, packets
_DONE_TAIL = struct.Struct("=IHHII")
NLMSG_HEADER = 16


def counter_pairs(data: bytes) -> list[tuple[int, int]]:
    """(packets, bytes) of every counter expression in dumped rule messages, in order."""
    found = _COUNTERS.findall(data)
    if not found:
        return []
    return [(packets, size) for size, packets in _PAIR.iter_unpack(b"".join(found))]


Columns = tuple[tuple[int, ...], tuple[int, ...]]  # packets per rule, bytes per rule
_EMPTY: Columns = ((), ())


@functools.lru_cache(maxsize=512)
def _values_of(rules: int) -> struct.Struct:
    """The captures of `rules` counters (bytes, 4 bytes of header, packets; as `_PAIR`)
    unpacked by one call: a host's chains come in a few dozen lengths."""
    return struct.Struct(">" + "Q4xQ" * rules)


def _unpacked(found: list[bytes]) -> Columns:
    if not found:
        return _EMPTY
    values = _values_of(len(found)).unpack(b"".join(found))
    return values[1::2], values[0::2]


def columns_of(pairs: Iterable[tuple[int, int]]) -> Columns:
    """(packets, bytes) pairs as two columns (a dump walked message by message; the agents'
    `iptables-save` fallbacks)."""
    listed = list(pairs)
    return tuple(p for p, _ in listed), tuple(b for _, b in listed)


NFTA_RULE_CHAIN = 2
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CHAIN = 2


def rule_summary(payload: bytes) -> tuple[str, Counter, str | None]:
    """(chain, counter, jump target) of one NEWRULE message's attributes (after nfgenmsg)."""
    chain = ""
    counter = Counter(0, 0)
    target: str | None = None
    for kind, value in attributes(payload):
        if kind == NFTA_RULE_CHAIN:
            chain = value.rstrip(b"\0").decode()
        elif kind == NFTA_RULE_EXPRESSIONS:
            for element_kind, element in attributes(value):
                if element_kind != NFTA_LIST_ELEM:
                    continue
                fields = dict(attributes(element))
                name = fields.get(NFTA_EXPR_NAME, b"").rstrip(b"\0")
                data = fields.get(NFTA_EXPR_DATA, b"")
                if name == b"counter":
                    found = dict(attributes(data))
                    counter = Counter(
                        struct.unpack(">Q", found.get(NFTA_COUNTER_PACKETS, bytes(8)))[0],
                        struct.unpack(">Q", found.get(NFTA_COUNTER_BYTES, bytes(8)))[0],
                    )
                elif name == b"immediate":
                    target = _jump_target(data) or target
    return chain, counter, target


def _jump_target(immediate: bytes) -> str | None:
    for kind, value in attributes(immediate):
        if kind != NFTA_IMMEDIATE_DATA:
            continue
        for data_kind, data in attributes(value):
            if data_kind != NFTA_DATA_VERDICT:
                continue
            for verdict_kind, verdict in attributes(data):
                if verdict_kind == NFTA_VERDICT_CHAIN:
                    return verdict.rstrip(b"\0").decode()
    return None


# libc through PyDLL: its calls keep the interpreter lock (CDLL's release it). See _Wire.
_LIBC = ctypes.PyDLL(None, use_errno=True)
_LIBC.send.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.send.restype = ctypes.c_ssize_t
_LIBC.recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.recv.restype = ctypes.c_ssize_t
MSG_DONTWAIT = 0x40
RECEIVE_BUFFER = 1 << 20
READ_TIMEOUT_S = 5.0
_T = TypeVar("_T")


class _Wire:
    """send/recv on the netlink socket without giving up the interpreter lock.

    The live thread shares the agent's interpreter with applies and drift checks. Reading 300
    chains is 600 system calls, and each one that releases the lock must wait to get it back
    while another thread computes (up to the 5 ms switch interval, more on a loaded machine):
    measured 0.08-0.14 s for 300 chains alone, 0.55-0.75 s beside one busy thread, and
    0.29-0.38 s beside it with this (the busy thread's fair share, on a loaded machine). These
    calls do not sleep (the kernel answers a dump during the send, and fills the next part in
    the recv), so they are made holding the lock; one that would block (MSG_DONTWAIT: EAGAIN)
    falls back to the ordinary socket call, which waits with the lock released."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = ctypes.create_string_buffer(RECEIVE_BUFFER)

    def send(self, data: bytes) -> None:
        sent = _LIBC.send(self.fd, data, len(data), MSG_DONTWAIT)
        if sent < 0:
            error = ctypes.get_errno()
            if error not in (errno.EAGAIN, errno.EINTR):
                raise OSError(error, os.strerror(error))
            self.sock.send(data)

    def recv(self) -> bytes:
        size = _LIBC.recv(self.fd, self.buffer, RECEIVE_BUFFER, MSG_DONTWAIT)
        if size >= 0:
            return ctypes.string_at(self.buffer, size)
        error = ctypes.get_errno()
        if error not in (errno.EAGAIN, errno.EINTR):
            raise OSError(error, os.strerror(error))
        return self.sock.recv(RECEIVE_BUFFER)


class NftCounterReader:
    """Counters of chains by position, one netlink dump per chain, on one socket."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._socket: socket.socket | None = None
        self._wire: _Wire | None = None
        self._sequence = 0
        self._lock = threading.Lock()

    def _sock(self) -> socket.socket:
        if self._socket is None:
            sock = in_netns(
                self.netns,
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER),
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(READ_TIMEOUT_S))
            sock.bind((0, 0))
            self._socket = sock
            self._wire = _Wire(sock)
        return self._socket

    def _guarded(self, chain: str, dump: Callable[[], _T]) -> _T:
        """One dump at a time on the socket. A dump that failed half way closes the socket:
        what the kernel still sends for it must not be read as the next dump's. A kernel that
        does not answer within `READ_TIMEOUT_S` (SO_RCVTIMEO: no extra poll per receive, which a
        socket timeout in Python costs) fails the read, naming it, instead of hanging the
        accounting or live thread for good. (A call, not a context manager: the accounting
        makes 6,000 dumps a busy reading, and `contextlib` cost 3 us each.)"""
        with self._lock:
            try:
                return dump()
            except BlockingIOError as error:
                self.close()
                raise TimeoutError(
                    f"nf_tables rule dump of {chain}: no answer in {READ_TIMEOUT_S} s"
                ) from error
            except BaseException:
                self.close()
                raise

    def available(self) -> bool:
        try:
            self._sock()
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._wire = None

    def read_chain(self, chain: str, family: int = 4, table: str = "filter") -> list[Counter]:
        """Counters by position; a missing chain reads as empty (like `read_chains`)."""
        return self._guarded(chain, lambda: self._read_chain_locked(chain, family, table))

    def _read_chain_locked(self, chain: str, family: int, table: str) -> list[Counter]:
        self._sock()
        wire = self._wire
        assert wire is not None
        self._sequence = sequence = (self._sequence + 1) & 0xFFFFFFFF
        wire.send(_rule_dump_request(chain, family, table, sequence))
        counters: list[Counter] = []
        while True:
            data = wire.recv()
            offset = 0
            while offset + 16 <= len(data):
                length, message_type, _flags, seq, _pid = struct.unpack_from("=IHHII", data,
                                                                            offset)  # fmt: skip
                message = data[offset + 16 : offset + length]
                offset += (length + 3) & ~3
                if seq != sequence:
                    continue
                if message_type == NLMSG_DONE:
                    return counters
                if message_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", message, 0)[0]
                    if code in (0,):
                        return counters
                    if code == errno.ENOENT:
                        return []
                    raise OSError(code, f"nf_tables rule dump of {chain}")
                counter = rule_counter(message[4:])  # after struct nfgenmsg
                counters.append(counter if counter is not None else _ZERO)

    def read_chains(
        self, chains: Iterable[str], family: int = 4, table: str = "filter"
    ) -> dict[str, list[Counter]]:
        return {chain: self.read_chain(chain, family, table) for chain in chains}

    def read_chain_fast(self, chain: str, family: int = 4, table: str = "filter") -> list[Counter]:
        """`read_chain` that finds each rule's counter by its fixed encoding instead of walking
        every attribute: a few microseconds per rule (the always-on accounting reads thousands
        of chains). Falls back to the full parse for a rule whose encoding differs."""
        return self._dump(chain, family, table, fast=True)

    def read_chain_pairs(
        self, chain: str, family: int = 4, table: str = "filter"
    ) -> list[tuple[int, int]]:
        """(packets, bytes) per rule (see `read_chain_columns`)."""
        packets, sizes = self.read_chain_columns(chain, family, table)
        return list(zip(packets, sizes, strict=True))

    def read_chain_columns(self, chain: str, family: int = 4, table: str = "filter") -> Columns:
        """The packets and the bytes of every rule, as two tuples in rule order: for reading
        every chain of a host (the accounting), where a pair per rule was a third of the work.
        Each buffer of the dump is searched for counter expressions whole (`_COUNTERS`), not
        message by message, and the values are unpacked in one call per chain. A buffer that does
        not start with this dump's messages (one left over from a dump that failed half way, say)
        is walked message by message instead; a missing chain reads as empty."""
        return self._guarded(chain, lambda: self._columns(self._sock(), chain, family, table))

    def _columns(self, sock: socket.socket, chain: str, family: int, table: str) -> Columns:
        self._sequence = sequence = (self._sequence + 1) & 0xFFFFFFFF
        sock.send(_rule_dump_request(chain, family, table, sequence))
        found: list[bytes] = []
        walked: list[tuple[int, int]] | None = None  # once a buffer held others' messages
        header = _DONE_TAIL.unpack_from
        while True:
            data = sock.recv(1 << 20)
            if len(data) < NLMSG_HEADER + 4:
                raise OSError(errno.EIO, f"short netlink message in the rule dump of {chain}")
            _length, kind, _flags, seq, _pid = header(data, 0)
            if walked is not None or seq != sequence:
                if walked is None:
                    walked = [_PAIR.unpack(piece)[::-1] for piece in found]
                if _walk_pairs(data, sequence, chain, walked):
                    return columns_of(walked)
            elif kind == NLMSG_DONE:
                return _unpacked(found)
            elif kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, NLMSG_HEADER)[0]
                if code in (0, errno.ENOENT):
                    return _unpacked(found) if code == 0 else _EMPTY
                raise OSError(code, f"nf_tables rule dump of {chain}")
            else:
                found += _COUNTERS.findall(data)
                length, kind, _flags, seq, _pid = header(data, len(data) - 20)
                if length == 20 and kind == NLMSG_DONE and seq == sequence:
                    return _unpacked(found)  # the dump's end came in the same buffer

    def read_chain_targets(
        self, chain: str, family: int = 4, table: str = "filter"
    ) -> list[tuple[Counter, str | None]]:
        """(counter, the chain a rule jumps to or None) per rule: for the built-in chains,
        whose positions are not ours to know (a few rules, fully parsed)."""
        return self._dump(chain, family, table, targets=True)

    def _dump(
        self, chain: str, family: int, table: str, *, fast: bool = False, targets: bool = False
    ) -> list[Any]:
        return self._guarded(
            chain, lambda: self._dump_locked(chain, family, table, fast=fast, targets=targets)
        )

    def _dump_locked(
        self, chain: str, family: int, table: str, *, fast: bool, targets: bool
    ) -> list[Any]:
        sock = self._sock()
        self._sequence = sequence = (self._sequence + 1) & 0xFFFFFFFF
        sock.send(_rule_dump_request(chain, family, table, sequence))
        out: list[Any] = []
        unpack = struct.unpack_from
        while True:
            data = sock.recv(1 << 20)
            offset = 0
            while offset + 16 <= len(data):
                length, message_type, _flags, seq, _pid = unpack("=IHHII", data, offset)
                start, offset = offset, offset + ((length + 3) & ~3)
                if seq != sequence:
                    continue
                if message_type == NLMSG_DONE:
                    return out
                if message_type == NLMSG_ERROR:
                    code = -unpack("=i", data, start + 16)[0]
                    if code in (0, errno.ENOENT):
                        return out if code == 0 else []
                    raise OSError(code, f"nf_tables rule dump of {chain}")
                if fast:
                    found = _counter_at(data, start + 20, start + length)
                    if found is None:
                        found = rule_counter(data[start + 20 : start + length]) or Counter(0, 0)
                    out.append(found)
                elif targets:
                    _chain, counter, target = rule_summary(data[start + 20 : start + length])
                    out.append((counter, target))


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def _rule_dump_request(chain: str, family: int, table: str, sequence: int) -> bytes:
    body = _rule_dump_body(chain, family, table)
    return _REQUEST_HEADER.pack(16 + len(body), _GETRULE, _DUMP_FLAGS, sequence, 0) + body


_REQUEST_HEADER = struct.Struct("=IHHII")
_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE
_DUMP_FLAGS = NLM_F_REQUEST | NLM_F_DUMP


@functools.lru_cache(maxsize=1 << 15)
def _rule_dump_body(chain: str, family: int, table: str) -> bytes:
    """The request's body, made once per chain: the accounting asks for the same few thousand
    chains every reading (a few microseconds each to encode)."""
    body = struct.pack("=BBH", NFPROTO[family], 0, 0)
    return body + _attribute(1, table.encode() + b"\0") + _attribute(2, chain.encode() + b"\0")


def _walk_pairs(data: bytes, sequence: int, chain: str, pairs: list[tuple[int, int]]) -> bool:
    """`read_chain_pairs` one message at a time: others' messages skipped; True at the end."""
    offset = 0
    while offset + NLMSG_HEADER <= len(data):
        length, kind, _flags, seq, _pid = _DONE_TAIL.unpack_from(data, offset)
        start, offset = offset, offset + ((length + 3) & ~3)
        if length < NLMSG_HEADER:
            raise OSError(errno.EIO, f"malformed netlink message in the rule dump of {chain}")
        if seq != sequence:
            continue
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, start + NLMSG_HEADER)[0]
            if code in (0, errno.ENOENT):
                if code == errno.ENOENT:
                    pairs.clear()
                return True
            raise OSError(code, f"nf_tables rule dump of {chain}")
        counter = rule_counter(data[start + 20 : start + length]) or _ZERO
        pairs.append((counter.packets, counter.bytes))
    return False
