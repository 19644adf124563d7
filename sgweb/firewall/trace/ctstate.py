"""What the kernel's connection tracking makes of a packet, beyond what the caller assumed.

The caller of the tracer says whether the packet belongs to a connection (ESTABLISHED,
RELATED) or not (NEW). Conntrack does not let every packet start a connection, and it refuses
some packets outright; the filter table's `--state` matches then see INVALID (or UNTRACKED),
and the ports' INVALID rule drops them before any security group rule is tried. From the
kernel's own code (nf_conntrack_proto_icmp.c, nf_conntrack_proto_icmpv6.c,
nf_conntrack_proto_tcp.c, nf_conntrack_proto_sctp.c, nf_conntrack_proto_udp.c), measured on
real kernels by the kernel tier's tests:

- ICMP: only echo, timestamp, information and address-mask requests (types 8, 13, 15, 17) can
  open a connection; an error (3, 4, 5, 11, 12) is RELATED to the connection it quotes or
  INVALID; any other type (an echo reply, 0) without its request is INVALID.
- ICMPv6: only echo requests (128) and node information queries (139) open one; neighbour
  discovery and MLD (130-136, 143) are left UNTRACKED; errors (below 128) are RELATED or
  INVALID; every other type is INVALID.
- TCP: a packet that opens no connection must be a SYN (or, with nf_conntrack_tcp_loose, the
  default, a bare ACK picked up mid-stream); a SYN-ACK, RST or FIN alone is INVALID.
- SCTP: an association opens with an INIT; an INIT-ACK (the answer to an INIT) that belongs
  to no association is INVALID (nf_conntrack_proto_sctp.c, sctp_new).
- UDP-Lite: the checksum validation of nf_conntrack_checksum (default on) marks every UDP-Lite
  packet that reaches PREROUTING INVALID on these kernels, connection or not.
"""

from __future__ import annotations

from sgweb.firewall.trace.packet import (
    CT_ESTABLISHED,
    CT_INVALID,
    CT_NEW,
    CT_RELATED,
    CT_UNTRACKED,
    HOOK_OUTPUT,
    Packet,
)

ICMP_OPENERS = {4: frozenset({8, 13, 15, 17}), 6: frozenset({128, 139})}
ICMP_ERRORS_V4 = frozenset({3, 4, 5, 11, 12})
ICMPV6_UNTRACKED = frozenset({130, 131, 132, 133, 134, 135, 136, 143})
ICMP_NAMES = {
    4: {0: "echo reply", 3: "destination unreachable", 4: "source quench", 5: "redirect",
        11: "time exceeded", 12: "parameter problem", 14: "timestamp reply",
        16: "information reply", 18: "address mask reply"},
    6: {1: "destination unreachable", 2: "packet too big", 3: "time exceeded",
        4: "parameter problem", 129: "echo reply", 140: "node information reply"},
}  # fmt: skip
_TCP = 6
_SCTP = 132
_UDPLITE = 136


def classify(packet: Packet, state: str) -> tuple[str, str | None]:
    """(the state the filter table sees, why it is not `state`) for a tracked packet."""
    number = packet.protocol_number
    if (
        number == _UDPLITE
        and packet.hook != HOOK_OUTPUT
        and state
        in (
            CT_NEW,
            CT_ESTABLISHED,
            CT_RELATED,
        )
    ):
        return CT_INVALID, (
            "conntrack's checksum validation (nf_conntrack_checksum) treats UDP-Lite as INVALID"
        )
    if state != CT_NEW:
        return state, None
    if packet.is_icmp:
        return _icmp(packet)
    if number == _TCP:
        flags = packet.flag_set
        # tcp_error ignores PSH (and URG rides along): a SYN or a bare ACK may open.
        if flags - {"PSH", "URG"} not in ({"SYN"}, {"ACK"}):
            shown = "-".join(sorted(flags, key=_flag_order))
            return (
                CT_INVALID,
                f"conntrack treats a TCP {shown} that belongs to no connection as INVALID",
            )
    if number == _SCTP and packet.sctp_chunk not in (None, "INIT"):
        return CT_INVALID, (
            "conntrack treats an SCTP INIT-ACK that belongs to no association as INVALID"
        )
    return state, None


def _flag_order(flag: str) -> int:
    order = ("SYN", "FIN", "RST", "PSH", "ACK", "URG")
    return order.index(flag) if flag in order else len(order)


def _icmp(packet: Packet) -> tuple[str, str | None]:
    family = packet.family or 4
    icmp_type = packet.effective_icmp_type or 0
    what = _icmp_name(family, icmp_type)
    if family == 6 and icmp_type in ICMPV6_UNTRACKED:
        return CT_UNTRACKED, f"conntrack leaves {what} untracked"
    is_error = icmp_type < 128 if family == 6 else icmp_type in ICMP_ERRORS_V4
    if is_error:
        return CT_INVALID, (
            f"conntrack treats {_article(what)} {what} quoting no connection as INVALID"
        )
    if icmp_type not in ICMP_OPENERS[family]:
        return CT_INVALID, f"conntrack treats an unsolicited {what} as INVALID"
    return CT_NEW, None


def _icmp_name(family: int, icmp_type: int) -> str:
    kind = "ICMPv6" if family == 6 else "ICMP"
    name = ICMP_NAMES[family].get(icmp_type)
    if family == 6 and icmp_type in ICMPV6_UNTRACKED:
        return f"ICMPv6 type {icmp_type} (neighbour discovery and MLD)"
    return name if name is not None and family == 4 else f"{kind} {name or f'type {icmp_type}'}"


def _article(words: str) -> str:
    return "an" if words[:1].lower() in "aeiou" else "a"
