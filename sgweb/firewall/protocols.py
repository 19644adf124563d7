"""IP protocols of security group rules: names, aliases and numbers, normalised the way
iptables-save prints them so that rendered rules compare equal to kernel dumps."""

from __future__ import annotations

from sgweb.firewall.model import IPV4, IPV6

# iptables-save prints a protocol by the name /etc/protocols gives it (Debian netbase, as
# measured on this machine with iptables 1.8.9) and by number otherwise.
NAME_BY_NUMBER: dict[int, str] = {
    1: "icmp",
    2: "igmp",
    3: "ggp",
    4: "ipencap",
    5: "st",
    6: "tcp",
    8: "egp",
    9: "igp",
    12: "pup",
    17: "udp",
    20: "hmp",
    22: "xns-idp",
    27: "rdp",
    29: "iso-tp4",
    33: "dccp",
    36: "xtp",
    37: "ddp",
    38: "idpr-cmtp",
    41: "ipv6",
    43: "ipv6-route",
    44: "ipv6-frag",
    45: "idrp",
    46: "rsvp",
    47: "gre",
    50: "esp",
    51: "ah",
    57: "skip",
    58: "ipv6-icmp",
    59: "ipv6-nonxt",
    60: "ipv6-opts",
    73: "rspf",
    81: "vmtp",
    88: "eigrp",
    89: "ospf",
    93: "ax.25",
    94: "ipip",
    97: "etherip",
    98: "encap",
    103: "pim",
    108: "ipcomp",
    112: "vrrp",
    115: "l2tp",
    124: "isis",
    132: "sctp",
    133: "fc",
    135: "mobility-header",
    136: "udplite",
    137: "mpls-in-ip",
    138: "manet",
    139: "hip",
    140: "shim6",
    141: "wesp",
    142: "rohc",
    143: "ethernet",
}
NUMBER_BY_NAME: dict[str, int] = {name: number for number, name in NAME_BY_NUMBER.items()}

ICMP = "icmp"
IPV6_ICMP = "ipv6-icmp"
# Names Neutron accepts for ICMPv6 in an IPv6 rule (the legacy ones included).
IPV6_ICMP_ALIASES = frozenset({"icmpv6", "ipv6-icmp", "58", "icmp"})
# Spellings that mean "any protocol": no -p at all (Neutron treats protocol 0 the same way).
ANY_PROTOCOL = frozenset({"", "any", "all", "0"})

# Protocols with destination ports (--dport / -m multiport --dports).
PORT_PROTOCOLS = frozenset({"tcp", "udp", "udplite", "sctp", "dccp"})
# Protocols whose single port must still go through multiport (iptables has no -m udplite).
MULTIPORT_ONLY_PROTOCOLS = frozenset({"udplite"})
# Protocols whose port range fields carry an ICMP type and code.
ICMP_PROTOCOLS = frozenset({ICMP, IPV6_ICMP})

ALIASES: dict[str, str] = {"icmpv6": IPV6_ICMP, "ipv6-encap": "ipv6", "hopopt": "0"}
# IPv6 extension headers and ICMPv6: meaningless in an IPv4 rule (Neutron refuses them there,
# and "ipv6-encap" by that name too).
IPV6_ONLY = frozenset({IPV6_ICMP, "ipv6-route", "ipv6-frag", "ipv6-nonxt", "ipv6-opts"})
IPV6_ONLY_NAMES = frozenset({*IPV6_ONLY, "icmpv6", "ipv6-encap"})


class UnknownProtocol(ValueError):
    """`code`: "unknown-protocol", "protocol-number-range" or "protocol-family"."""

    def __init__(self, message: str, code: str = "unknown-protocol") -> None:
        super().__init__(message)
        self.code = code


def normalize_protocol(protocol: str | int | None, ethertype: str) -> str | None:
    """The canonical protocol of a rule: None for any, else the iptables-save spelling.

    Raises UnknownProtocol (a ValueError) for names nobody knows, numbers outside 0-255 and
    ICMP of the wrong family.
    """
    if protocol is None:
        return None
    text = str(protocol).strip().lower()
    if text in ANY_PROTOCOL:
        return None
    if ethertype == IPV4 and text in IPV6_ONLY_NAMES:
        raise UnknownProtocol(f"{text} in an IPv4 rule", "protocol-family")
    if ethertype == IPV6 and text in IPV6_ICMP_ALIASES:
        return IPV6_ICMP
    text = ALIASES.get(text, text)
    if text in ANY_PROTOCOL:
        return None
    if text.isdigit():
        number = int(text)
        if not 0 <= number <= 255:
            raise UnknownProtocol(
                f"protocol number {number} is outside 0-255", "protocol-number-range"
            )
        if number == 0:
            return None
        canonical = NAME_BY_NUMBER.get(number, str(number))
    elif text in NUMBER_BY_NAME:
        canonical = text
    else:
        raise UnknownProtocol(f"unknown protocol {protocol!r}")
    if ethertype == IPV4 and canonical in IPV6_ONLY:
        raise UnknownProtocol(f"{canonical} in an IPv4 rule", "protocol-family")
    return canonical


def takes_ports(protocol: str | None) -> bool:
    return protocol in PORT_PROTOCOLS


def takes_icmp_type(protocol: str | None) -> bool:
    return protocol in ICMP_PROTOCOLS
