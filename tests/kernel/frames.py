"""Whole Ethernet frames for the batch prober: any protocol, ICMP type, flags, source and MAC.

Probes are written at layer 2 (AF_PACKET) so a test controls every field the firewall looks at
(spoofed sources and MACs, ICMP error types, UDP-Lite, protocols no socket API sends), and each
carries a tag (`SGWT` + 8 digits) at the end of its payload so the receiving side can tell
which probe arrived. Checksums are correct, as a real stack's would be.
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
    return payload


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
