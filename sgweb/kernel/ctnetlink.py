"""A namespace's whole connection-tracking table read, and entries deleted, on a raw ctnetlink
socket: a router's cuts (`RouterFirewall.cut_denied_connections`) decide every tracked
connection, so they read them all.

Why not pyroute2 here, as `sgweb.kernel.conntrack` does for a port's cuts: that path asks the
kernel for the entries of a few addresses, and pyroute2 decodes each entry whole (counters,
timeouts, status, helpers) in Python, about 0.4 ms an entry, plus a process it forks to open
its socket in the namespace. A router's read wants every entry but only its original tuple:
here the socket is opened in the namespace from a thread (`netns.in_netns`), only the tuple
attributes are decoded, and a delete sends back the tuple attributes the dump gave, so it names
exactly the entry that was read (zone included).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from dataclasses import dataclass

from sgweb.kernel.netns import in_netns

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_HEADER = 16
CTA_TUPLE_ORIG = 1
CTA_ZONE = 18
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
# ICMP's id, type, code; ICMPv6's are the next three.
CTA_PROTO_ICMP = (4, 5, 6)
CTA_PROTO_ICMPV6 = (7, 8, 9)
_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_HEADER = struct.Struct("=IHHII")
# The kernel answers a dump of a busy table in milliseconds; seconds is a kernel in trouble.
TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Tracked:
    """One entry's original direction; `key`: its tuple (and zone) attributes as dumped."""

    family: int
    protocol: int
    src: str
    dst: str
    sport: int | None
    dport: int | None
    icmp_type: int | None
    icmp_code: int | None
    icmp_id: int | None
    key: bytes


def attributes(data: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """type -> payload of the netlink attributes in data[start:end] (the first of each type)."""
    found: dict[int, bytes] = {}
    end = len(data) if end is None else end
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4:
            break
        found.setdefault(kind & _TYPE_MASK, data[start + 4 : start + length])
        start += (length + 3) & ~3
    return found


def _attribute(kind: int, payload: bytes) -> bytes:
    body = struct.pack("=HH", 4 + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


def tracked_of(family: int, body: bytes) -> Tracked | None:
    """An entry from a dump message's body (after the nfgenmsg header); None without a tuple."""
    top = attributes(body)
    tuple_orig = top.get(CTA_TUPLE_ORIG)
    if tuple_orig is None:
        return None
    parts = attributes(tuple_orig)
    ip, proto = (
        attributes(parts.get(CTA_TUPLE_IP, b"")),
        attributes(parts.get(CTA_TUPLE_PROTO, b"")),
    )
    src, dst = (ip.get(1), ip.get(2)) if family == 4 else (ip.get(3), ip.get(4))
    number = proto.get(CTA_PROTO_NUM)
    if not src or not dst or not number:
        return None

    def u16(kind: int) -> int | None:
        value = proto.get(kind)
        return struct.unpack("!H", value[:2])[0] if value and len(value) >= 2 else None

    def u8(kind: int) -> int | None:
        value = proto.get(kind)
        return value[0] if value else None

    icmp_id, icmp_type, icmp_code = CTA_PROTO_ICMP if family == 4 else CTA_PROTO_ICMPV6
    key = _attribute(CTA_TUPLE_ORIG | 0x8000, tuple_orig)
    if CTA_ZONE in top:
        key += _attribute(CTA_ZONE, top[CTA_ZONE])
    return Tracked(
        family,
        number[0],
        str(ipaddress.ip_address(src)),
        str(ipaddress.ip_address(dst)),
        u16(CTA_PROTO_SRC_PORT),
        u16(CTA_PROTO_DST_PORT),
        u8(icmp_type),
        u8(icmp_code),
        u16(icmp_id),
        key,
    )


class ConntrackTable:
    """One ctnetlink socket in a namespace: `entries` of a family, `delete` one of them."""

    def __init__(self, netns: str | None, timeout_s: float = TIMEOUT_S) -> None:
        self.netns = netns
        self.timeout_s = timeout_s
        self._sock: socket.socket | None = None
        self._sequence = 0

    def __enter__(self) -> ConntrackTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = in_netns(
                self.netns,
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER),
            )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.settimeout(self.timeout_s)
            sock.bind((0, 0))
            self._sock = sock
        return self._sock

    def _send(self, kind: int, flags: int, family: int, payload: bytes = b"") -> int:
        self._sequence = sequence = (self._sequence + 1) & 0xFFFFFFFF
        body = struct.pack("=BBH", _FAMILIES[family], 0, 0) + payload
        message_kind = (NFNL_SUBSYS_CTNETLINK << 8) | kind
        header = _HEADER.pack(NLMSG_HEADER + len(body), message_kind, flags, sequence, 0)
        self._socket().send(header + body)
        return sequence

    def _receive(self, what: str) -> bytes:
        try:
            return self._socket().recv(1 << 20)
        except TimeoutError:
            raise TimeoutError(
                f"ctnetlink did not answer the {what} in {self.netns or 'the root namespace'} "
                f"within {self.timeout_s:g} s"
            ) from None

    def entries(self, family: int) -> list[Tracked]:
        """Every entry of one family; OSError when the table cannot be read."""
        what = f"IPv{family} dump"
        sequence = self._send(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, family)
        found: list[Tracked] = []
        while True:
            data = self._receive(what)
            offset = 0
            while offset + NLMSG_HEADER <= len(data):
                length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                start, offset = offset, offset + ((length + 3) & ~3)
                if length < NLMSG_HEADER:
                    raise OSError(errno.EIO, f"malformed ctnetlink message in the {what}")
                if seq != sequence:
                    continue
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, start + NLMSG_HEADER)[0]
                    if code:
                        raise OSError(code, f"ctnetlink {what}: {errno.errorcode.get(code)}")
                    return found
                entry = tracked_of(family, data[start + NLMSG_HEADER + 4 : start + length])
                if entry is not None:
                    found.append(entry)

    def delete(self, entry: Tracked) -> str | None:
        """Delete one entry read by `entries`; None when it is gone (one that ended meanwhile
        is gone too), else why not."""
        try:
            sequence = self._send(
                IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, entry.family, entry.key
            )
            while True:
                data = self._receive("delete")
                offset = 0
                while offset + NLMSG_HEADER <= len(data):
                    length, kind, _flags, seq, _pid = _HEADER.unpack_from(data, offset)
                    start, offset = offset, offset + ((length + 3) & ~3)
                    if length < NLMSG_HEADER:
                        return "malformed ctnetlink answer to a delete"
                    if seq != sequence or kind != NLMSG_ERROR:
                        continue
                    code = -struct.unpack_from("=i", data, start + NLMSG_HEADER)[0]
                    if code in (0, errno.ENOENT):
                        return None
                    return f"conntrack delete {entry.src} -> {entry.dst}: {os_error(code)}"
        except OSError as exc:
            return f"conntrack delete {entry.src} -> {entry.dst}: {exc}"


def os_error(code: int) -> str:
    return f"[Errno {code}] {errno.errorcode.get(code, '?')}"
