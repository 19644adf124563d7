"""The desired state of one compute host, as frozen dataclasses.

This is the compiler's whole input. It carries no user prose (names are kept only so the tracer
can speak in security-group terms; they never reach rule text) and imports nothing from Django,
so the host agent can use it alone. `sgweb.firewall.scenario` builds it from scenario JSON and the
control plane builds it from ORM objects; both go through the same validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)

IPV4 = "IPv4"
IPV6 = "IPv6"
ETHERTYPES = (IPV4, IPV6)

DEFAULT_CHAIN_PREFIX = "neutron-openvswi"

COMPAT_NEUTRON = "neutron"
COMPAT_ARTICLE = "article"
COMPATS = (COMPAT_NEUTRON, COMPAT_ARTICLE)

# Packet logging (Neutron's logging API): which events of a port are logged.
LOG_ALL = "ALL"
LOG_ACCEPT = "ACCEPT"
LOG_DROP = "DROP"
LOG_EVENTS = (LOG_ALL, LOG_ACCEPT, LOG_DROP)


@dataclass(frozen=True, slots=True)
class SecurityGroupRule:
    id: str
    direction: str  # INGRESS | EGRESS
    ethertype: str  # IPV4 | IPV6
    # A protocol name ("tcp", "udp", "icmp", "ipv6-icmp", ...), a number as a string, or None
    # for any protocol. Names and aliases are normalised by sgweb.firewall.protocols.
    protocol: str | None = None
    # For tcp/udp/sctp/udplite: the destination port range. For icmp/ipv6-icmp: type and code.
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None  # a CIDR of the rule's family; exclusive with the next
    remote_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class SecurityGroup:
    id: str
    name: str = ""
    stateful: bool = True
    rules: tuple[SecurityGroupRule, ...] = ()


@dataclass(frozen=True, slots=True)
class AddressPair:
    ip_address: str  # an address or a CIDR
    mac_address: str | None = None  # None means the port's own MAC


@dataclass(frozen=True, slots=True)
class Port:
    id: str
    mac_address: str
    fixed_ips: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()  # group ids, in the order the port lists them
    allowed_address_pairs: tuple[AddressPair, ...] = ()
    port_security_enabled: bool = True
    dhcp_servers: tuple[str, ...] = ()  # the DHCP servers of the port's subnets (v4 and v6)
    host: str | None = None
    device: str | None = None  # None: "tap" + the first 11 characters of the id
    network_id: str | None = None
    name: str = ""  # for explanations only; never reaches rule text
    # Only for a Linux bridge shared by several ports (the Linux-bridge layout): traffic towards
    # those VMs enters that bridge from another port, so the raw table zones it by bridge and
    # the ports on it share one zone. None (the hybrid layout, what the control plane sends):
    # the port has its own zone, set on both of its devices (tap... and qvb...).
    bridge: str | None = None
    # The port's own conntrack zone (the control plane stores one per port, from 4097 up, so it
    # never changes while the port lives); None: numbered by the compiler.
    conntrack_zone: int | None = None
    # The packet-log events of this port (LOG_ALL, LOG_ACCEPT, LOG_DROP) or None: not logged.
    # The control plane resolves log resources (of the port or of one of its groups) into it.
    log_events: str | None = None


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a host's logged ports send packets to the agent: NFLOG groups per family, and the
    rate limit of each log rule (Neutron's defaults: 100 packets/s, burst 25), so that a flood
    cannot overload the agent or the control plane."""

    rate: int = 100  # packets per second
    burst: int = 25
    nflog_group_v4: int = 10
    nflog_group_v6: int = 11

    def nflog_group(self, family: int) -> int:
        return self.nflog_group_v4 if family == 4 else self.nflog_group_v6


@dataclass(frozen=True, slots=True)
class HostState:
    """Everything one host's firewall is compiled from."""

    ports: tuple[Port, ...] = ()
    # Every group that a port on this host uses or that one of their rules names as remote.
    security_groups: tuple[SecurityGroup, ...] = ()
    # group id -> the addresses (fixed IPs and allowed-address-pair IPs, any host) of the
    # ports in that group. Only groups named as a remote group need to be present.
    remote_group_members: tuple[tuple[str, tuple[str, ...]], ...] = ()
    enable_ipset: bool = True
    chain_prefix: str = DEFAULT_CHAIN_PREFIX
    host: str | None = None
    # Explicit conntrack zones (port id or, failing that, network id -> zone) for ports without
    # their own `conntrack_zone`; where missing the compiler numbers them deterministically.
    conntrack_zones: tuple[tuple[str, int], ...] = field(default=())
    # The layout variant: COMPAT_NEUTRON (current Neutron: only 0.0.0.0 -> 255.255.255.255 DHCP
    # passes before the anti-spoofing check) or COMPAT_ARTICLE (the article's layout line for
    # line: every DHCP request passes before it, whatever its source address and MAC).
    compat: str = "neutron"
    log_settings: LogSettings = field(default=LogSettings())

    def group(self, group_id: str) -> SecurityGroup | None:
        for group in self.security_groups:
            if group.id == group_id:
                return group
        return None

    def members(self, group_id: str) -> tuple[str, ...]:
        for gid, addresses in self.remote_group_members:
            if gid == group_id:
                return addresses
        return ()
