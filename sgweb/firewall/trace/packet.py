"""The packet the tracer walks, and the vocabulary of a trace (hooks, conntrack states).

Split from `tracer` so the matchers and the index can use it without importing the walk.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from sgweb.firewall.protocols import ALIASES, NUMBER_BY_NAME

HOOK_FORWARD = "FORWARD"
HOOK_INPUT = "INPUT"
HOOK_OUTPUT = "OUTPUT"
HOOKS = (HOOK_FORWARD, HOOK_INPUT, HOOK_OUTPUT)

CT_NEW = "NEW"
CT_ESTABLISHED = "ESTABLISHED"
CT_RELATED = "RELATED"
CT_INVALID = "INVALID"
CT_UNTRACKED = "UNTRACKED"
CT_STATES = (CT_NEW, CT_ESTABLISHED, CT_RELATED, CT_INVALID, CT_UNTRACKED)

# Every name iptables-save prints (and Neutron's aliases) -> number.
PROTOCOL_NUMBERS: Mapping[str, int] = {
    **NUMBER_BY_NAME,
    **{alias: NUMBER_BY_NAME[name] for alias, name in ALIASES.items() if name in NUMBER_BY_NAME},
}
# "all" / 0 in a rule means any protocol, exactly like a rule without -p.
_ANY_PROTOCOL = ("all", "any", "0")

TCP_FLAG_NAMES = ("SYN", "ACK", "FIN", "RST", "PSH", "URG")
SCTP_CHUNKS = ("INIT", "INIT_ACK")

_ECHO_REQUEST = {4: 8, 6: 128}
_ICMP_NUMBERS = {4: 1, 6: 58}


class TraceError(ValueError):
    """The compiled state cannot be walked (unknown chain or set, a loop) or the packet is
    malformed."""


def protocol_number(protocol: str | int | None) -> int | None:
    """The IP protocol number for a name or number; None for "any"."""
    if protocol is None:
        return None
    if isinstance(protocol, int):
        number = protocol
    else:
        text = protocol.strip().lower()
        if text in _ANY_PROTOCOL:
            return None
        if text.isdigit():
            number = int(text)
        elif text in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[text]
        else:
            raise TraceError(f"unknown protocol {protocol!r}")
    if not 0 <= number <= 255:
        raise TraceError(f"protocol number {number} is not between 0 and 255")
    return number or None


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as the host's netfilter sees it.

    `physdev_in` / `physdev_out` are the bridge ports (tap devices) it enters and leaves; None
    when it does not cross a bridge. `in_interface` is the IP-level input device (for bridged
    traffic, the bridge). `family` is inferred from the addresses when not given. An ICMP
    packet without a type is an echo request; without a code, code 0.
    """

    src: str | None = None
    dst: str | None = None
    protocol: str | int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    physdev_in: str | None = None
    physdev_out: str | None = None
    in_interface: str | None = None
    hook: str = HOOK_FORWARD
    ct_state: str = CT_NEW
    family: int | None = None
    # TCP flags as "SYN", "SYN,ACK", ... (None: a SYN, a connection's first packet). They
    # matter only to conntrack: a packet that opens no connection must be a SYN or an ACK.
    tcp_flags: str | None = None
    # SCTP's chunk, "INIT" or "INIT_ACK" (None: an INIT, an association's first packet). It
    # matters only to conntrack: an association opens with an INIT alone.
    sctp_chunk: str | None = None

    def __post_init__(self) -> None:
        families = {_address_family(a) for a in (self.src, self.dst) if a is not None}
        if len(families) > 1:
            raise TraceError(f"source {self.src} and destination {self.dst} mix IPv4 and IPv6")
        inferred = families.pop() if families else None
        if self.family is None:
            object.__setattr__(self, "family", inferred or 4)
        elif self.family not in (4, 6):
            raise TraceError(f"family must be 4 or 6, not {self.family}")
        elif inferred is not None and inferred != self.family:
            raise TraceError(f"addresses are IPv{inferred} but family {self.family} was given")
        object.__setattr__(self, "hook", self.hook.upper())
        if self.hook not in HOOKS:
            raise TraceError(f"hook must be one of {', '.join(HOOKS)}, not {self.hook}")
        object.__setattr__(self, "ct_state", self.ct_state.upper())
        if self.ct_state not in CT_STATES:
            raise TraceError(f"conntrack state must be one of {', '.join(CT_STATES)}")
        protocol_number(self.protocol)  # validates
        for name in ("sport", "dport"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise TraceError(f"{name} {value} is not a port number")
        for name in ("icmp_type", "icmp_code"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 255:
                raise TraceError(f"{name} {value} is not between 0 and 255")
        self._check_opening_fields()
        if self.hook == HOOK_INPUT and self.physdev_out is not None:
            raise TraceError("a packet delivered to the host (INPUT) leaves by no bridge port")

    def _check_opening_fields(self) -> None:
        """The TCP flags and SCTP chunk (what conntrack reads to open a connection)."""
        if self.tcp_flags is not None:
            flags = self.flag_set
            unknown = flags - set(TCP_FLAG_NAMES)
            if unknown or not flags:
                raise TraceError(
                    f"TCP flags {self.tcp_flags!r}: use {', '.join(TCP_FLAG_NAMES)} joined by ','"
                )
        if self.sctp_chunk is not None:
            object.__setattr__(self, "sctp_chunk", self.sctp_chunk.upper().replace("-", "_"))
            if self.sctp_chunk not in SCTP_CHUNKS:
                raise TraceError(f"SCTP chunk must be one of {', '.join(SCTP_CHUNKS)}")

    @property
    def protocol_number(self) -> int | None:
        return protocol_number(self.protocol)

    @property
    def flag_set(self) -> frozenset[str]:
        """The TCP flags, upper case ({"SYN"} when none were given)."""
        if self.tcp_flags is None:
            return frozenset({"SYN"})
        return frozenset(part.strip().upper() for part in self.tcp_flags.split(",") if part.strip())

    @property
    def is_icmp(self) -> bool:
        return self.protocol_number == _ICMP_NUMBERS[self.family or 4]

    @property
    def effective_icmp_type(self) -> int | None:
        if not self.is_icmp:
            return None
        return _ECHO_REQUEST[self.family or 4] if self.icmp_type is None else self.icmp_type

    @property
    def effective_icmp_code(self) -> int | None:
        if not self.is_icmp:
            return None
        return 0 if self.icmp_code is None else self.icmp_code


def _address_family(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError as error:
        raise TraceError(f"{address!r} is not an IP address") from error
