"""Whole Ethernet frames for the batch prober: any protocol, ICMP type, flags, source and MAC.

Probes are written at layer 2 (AF_PACKET) so a test controls every field the firewall looks at
(spoofed sources and MACs, ICMP error types, UDP-Lite, SCTP, DCCP, GRE, protocols no socket
API sends), and each carries a tag (`SGWT` + 8 digits) in its payload so the receiving side
can tell which probe arrived. Checksums are correct, as a real stack's would be.
"""

from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass

TAG = re.compile(rb"SGWT(\d{8})")
ETHERTYPE = {4: 0x0800, 6: 0x86DD}
PROTO_ICMP = {4: 1, 6: 58}
TCP, UDP, UDPLITE = 6, 17, 136
SCTP, DCCP, GRE = 132, 33, 47
TCP_FLAGS = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10}


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """One probe packet. `protocol` is a number; ICMP fields are used for ICMP and ICMPv6."""

    tag: int
    family: int
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    protocol: int
    sport: int = 0
    dport: int = 0
    icmp_type: int = 8
    icmp_code: int = 0
    icmp_id: int = 0
    tcp_flags: str = "SYN"
    answer: bool = False  # an answer: SCTP's INIT-ACK to an INIT, DCCP's Response to a Request


def _mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pseudo(spec: FrameSpec, length: int, protocol: int) -> bytes:
    src = ipaddress.ip_address(spec.src).packed
    dst = ipaddress.ip_address(spec.dst).packed
    if spec.family == 4:
        return src + dst + struct.pack("!BBH", 0, protocol, length)
    return src + dst + struct.pack("!IxxxB", length, protocol)


def _with_checksum(header: bytearray, at: int, spec: FrameSpec, protocol: int) -> bytes:
    pseudo = _pseudo(spec, len(header), protocol)
    value = checksum(pseudo + bytes(header))
    if protocol in (UDP, UDPLITE) and value == 0:
        value = 0xFFFF  # zero means "no checksum" to UDP and is refused by UDP-Lite
    struct.pack_into("!H", header, at, value)
    return bytes(header)


def _icmp(spec: FrameSpec, payload: bytes) -> bytes:
    rest = struct.pack("!HH", spec.icmp_id, 1)
    if not _is_informational(spec):
        # An error quotes the packet it is about: an invented UDP datagram of ours.
        rest = b"\0\0\0\0" + _quoted_packet(spec)
    body = bytearray(struct.pack("!BBH", spec.icmp_type, spec.icmp_code, 0) + rest + payload)
    if spec.family == 4:
        struct.pack_into("!H", body, 2, checksum(bytes(body)))
        return bytes(body)
    return _with_checksum(body, 2, spec, 58)


def _is_informational(spec: FrameSpec) -> bool:
    if spec.family == 6:
        return spec.icmp_type >= 128
    return spec.icmp_type not in (3, 4, 5, 11, 12)


def _quoted_packet(spec: FrameSpec) -> bytes:
    """The start of a datagram the receiver supposedly sent (dst -> src, udp 33434 -> 9)."""
    udp = struct.pack("!HHHH", 33434 + spec.tag % 1000, 9, 8, 0)
    src = ipaddress.ip_address(spec.dst).packed
    dst = ipaddress.ip_address(spec.src).packed
    if spec.family == 4:
        header = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, UDP, 0, src, dst))
        struct.pack_into("!H", header, 10, checksum(bytes(header)))
        return bytes(header) + udp
    return struct.pack("!IHBB16s16s", 6 << 28, 8, UDP, 64, src, dst) + udp


def _transport(spec: FrameSpec, payload: bytes) -> bytes:
    if spec.protocol == PROTO_ICMP[spec.family]:
        return _icmp(spec, payload)
    if spec.protocol == TCP:
        flags = 0
        for name in spec.tcp_flags.split(","):
            flags |= TCP_FLAGS[name.strip().upper()]
        ack = 1 if flags & TCP_FLAGS["ACK"] else 0
        header = bytearray(
            struct.pack("!HHIIBBHHH", spec.sport, spec.dport, 1000 + spec.tag, ack, 5 << 4,
                        flags, 64240, 0, 0)
        )  # fmt: skip
        return _with_checksum(header + payload, 16, spec, TCP)
    if spec.protocol in (UDP, UDPLITE):
        length = 8 + len(payload)
        # UDP-Lite: checksum coverage 0 means the whole datagram (RFC 3828).
        third = length if spec.protocol == UDP else 0
        header = bytearray(struct.pack("!HHHH", spec.sport, spec.dport, third, 0))
        return _with_checksum(header + payload, 6, spec, spec.protocol)
    if spec.protocol == SCTP:
        return _sctp(spec, payload)
    if spec.protocol == DCCP:
        return _dccp(spec, payload)
    if spec.protocol == GRE:
        return struct.pack("!HH", 0, 0x0800) + payload  # GRE version 0: tracked by addresses
    return payload


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC32C[(crc ^ byte) & 0xFF]
    return ~crc & 0xFFFFFFFF


def sctp_init_tag(port: int) -> int:
    """The initiate tag an INIT from `port` carries; its INIT-ACK must quote it as the
    verification tag, or conntrack calls the answer INVALID."""
    return 0x5C700000 | port


def _sctp(spec: FrameSpec, payload: bytes) -> bytes:
    """An INIT (or, answering, an INIT-ACK) whose one parameter holds the payload: conntrack
    wants INIT and INIT-ACK to be a packet's only chunk, and checks the CRC32c (conntrack's
    checksum validation)."""
    chunk_type, vtag = 1, 0
    init_tag = sctp_init_tag(spec.sport)
    if spec.answer:
        chunk_type, vtag = 2, sctp_init_tag(spec.dport)
    parameter = struct.pack("!HH", 0xC0DE, 4 + len(payload)) + payload
    parameter += b"\0" * (-len(parameter) % 4)
    chunk = struct.pack("!BBHIIHHI", chunk_type, 0, 20 + len(parameter), init_tag, 65535,
                        1, 1, 1000 + spec.tag) + parameter  # fmt: skip
    header = bytearray(struct.pack("!HHII", spec.sport, spec.dport, vtag, 0) + chunk)
    struct.pack_into("<I", header, 8, crc32c(bytes(header)))
    return bytes(header)


def _dccp(spec: FrameSpec, payload: bytes) -> bytes:
    """A DCCP-Request (or, answering, a DCCP-Response) with 48-bit sequence numbers."""
    packet_type, extra = (
        (1, struct.pack("!HHI", 0, 0, 1000 + spec.tag)) if spec.answer else (0, b"")
    )
    service = struct.pack("!I", 0)
    offset = (16 + len(extra) + len(service)) // 4
    header = bytearray(
        struct.pack("!HHBBHBBHI", spec.sport, spec.dport, offset, 0, 0, packet_type << 1 | 1,
                    0, 0, 1000 + spec.tag)
    )  # fmt: skip
    return _with_checksum(header + extra + service + payload, 6, spec, DCCP)


def build(spec: FrameSpec) -> bytes:
    """The frame: Ethernet, IPv4 or IPv6, the transport and the tag."""
    tag = b"SGWT%08d" % spec.tag
    transport = _transport(spec, tag)
    src = ipaddress.ip_address(spec.src).packed
    dst = ipaddress.ip_address(spec.dst).packed
    if spec.family == 4:
        ip = bytearray(
            struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(transport), spec.tag & 0xFFFF, 0,
                        64, spec.protocol, 0, src, dst)
        )  # fmt: skip
        struct.pack_into("!H", ip, 10, checksum(bytes(ip)))
        packet = bytes(ip) + transport
    else:
        packet = struct.pack("!IHBB16s16s", 6 << 28, len(transport), spec.protocol, 64, src, dst)
        packet += transport
    ethernet = _mac(spec.dst_mac) + _mac(spec.src_mac) + struct.pack("!H", ETHERTYPE[spec.family])
    return ethernet + packet


def tags_in(frame: bytes) -> list[int]:
    return [int(match.group(1)) for match in TAG.finditer(frame)]
