"""The desired state of the routers on one network node, as frozen dataclasses (issue 16).

The FWaaS compiler's whole input, like `sgweb.firewall.model.HostState` for the port chains: no
Django, so the agent can use it alone; the control plane builds it from ORM objects in one
adapter. Names are kept for explanations only ("dropped by firewall rule deny-db (policy
prod-egress, position 3) on router r1 interface to net-app"); they never reach rule text.

Semantics (Neutron FWaaS v2, as neutron-fwaas's iptables v2 driver applies them): a firewall
group applies to router interface ports; its ingress policy filters what goes toward the port's
network (leaves the router by that interface, `-o qr-...`), its egress policy what comes from
that network into the router (`-i qr-...`). A policy's enabled rules are matched in order, first
match wins (allow ACCEPT, deny DROP, reject REJECT); established traffic is allowed, INVALID
dropped; a packet that matches no rule is dropped. A group without a policy for a direction
drops that direction's new connections too (the driver installs only the INVALID/ESTABLISHED
rules and the default drop); a group with admin_state_up false drops everything through its
ports (Neutron: "does not forward packets"). See sgweb/firewall/fwaas/compiler.py.
"""

from __future__ import annotations

from dataclasses import dataclass

ALLOW = "allow"
DENY = "deny"
REJECT = "reject"
ACTIONS = (ALLOW, DENY, REJECT)

PROTOCOLS = ("tcp", "udp", "icmp")  # None: any protocol

ROUTER_INTERFACE_PREFIX = "qr-"
DEVICE_ID_CHARS = 11  # Neutron: "qr-" + the first 11 characters of the port id


@dataclass(frozen=True, slots=True)
class FirewallRule:
    id: str
    name: str = ""
    protocol: str | None = None  # "tcp" | "udp" | "icmp" | None (any)
    ip_version: int = 4  # 4 | 6
    source_ip_address: str | None = None  # an address or CIDR of ip_version
    destination_ip_address: str | None = None
    source_port: str | None = None  # "80" or "80:90" (tcp/udp only)
    destination_port: str | None = None
    action: str = DENY  # ALLOW | DENY | REJECT
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FirewallPolicy:
    id: str
    name: str = ""
    rules: tuple[FirewallRule, ...] = ()  # in policy order (position 1 first)


@dataclass(frozen=True, slots=True)
class FirewallGroup:
    id: str
    name: str = ""
    ingress_policy: FirewallPolicy | None = None
    egress_policy: FirewallPolicy | None = None
    ports: tuple[str, ...] = ()  # router interface port ids
    admin_state_up: bool = True


@dataclass(frozen=True, slots=True)
class RouterInterface:
    port_id: str
    network_id: str
    subnet_id: str
    cidr: str  # the subnet, e.g. "192.0.2.0/24"
    ip_address: str  # the subnet's gateway address, held by the router
    mac_address: str
    network_name: str = ""  # for explanations only

    @property
    def device(self) -> str:
        return ROUTER_INTERFACE_PREFIX + self.port_id[:DEVICE_ID_CHARS]


@dataclass(frozen=True, slots=True)
class Router:
    id: str
    name: str = ""
    interfaces: tuple[RouterInterface, ...] = ()

    @property
    def namespace(self) -> str:
        return "qrouter-" + self.id


@dataclass(frozen=True, slots=True)
class RouterState:
    """One router and the firewall groups on its interfaces: what its namespace's filter table
    is compiled from. A firewall group appears here only if one of its ports is an interface
    of this router (its other ports belong to other routers' states)."""

    router: Router
    firewall_groups: tuple[FirewallGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkNodeState:
    """Everything one network node's routers are compiled from."""

    host: str
    routers: tuple[RouterState, ...] = ()
