"""The worked example of issue 16: router r1 between net-web (192.0.2.0/24, 2001:db8:1::/64)
and net-app (198.51.100.0/24, 2001:db8:2::/64), one firewall group on each interface.

prod-egress (the web side's egress: what web sends into the router), in order:
  1 allow-icmp   icmp                                       allow
  2 allow-http   tcp to 198.51.100.0/24 port 80             allow
  3 deny-db      tcp to 198.51.100.10 port 5432             deny
  4 reject-ssh   tcp port 22                                reject
  5 (disabled)   any                                        allow
  6 allow-db     tcp port 5432                              allow   (never reached for .10)
  7 allow-v6-ping icmp IPv6                                 allow
The app side's group has an ingress policy allowing everything from net-web except udp.
"""

from __future__ import annotations

from sgweb.firewall.fwaas.model import (
    ALLOW,
    DENY,
    REJECT,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    Router,
    RouterInterface,
    RouterState,
)

WEB_PORT = "5f3c2a10-aaaa-4bbb-8ccc-000000000001"
APP_PORT = "9e1d7b20-aaaa-4bbb-8ccc-000000000002"
WEB_GROUP = "fa11ed00-0000-4000-8000-00000000000a"
APP_GROUP = "fb22ed00-0000-4000-8000-00000000000b"

WEB = RouterInterface(
    port_id=WEB_PORT,
    network_id="net-web-id",
    subnet_id="subnet-web-id",
    cidr="192.0.2.0/24",
    ip_address="192.0.2.1",
    mac_address="fa:16:3e:00:00:01",
    network_name="net-web",
)
APP = RouterInterface(
    port_id=APP_PORT,
    network_id="net-app-id",
    subnet_id="subnet-app-id",
    cidr="198.51.100.0/24",
    ip_address="198.51.100.1",
    mac_address="fa:16:3e:00:00:02",
    network_name="net-app",
)

# Dual stack: each port holds a second subnet, as Neutron adds an IPv6 subnet to the same port.
WEB6 = RouterInterface(
    port_id=WEB_PORT,
    network_id="net-web-id",
    subnet_id="subnet-web6-id",
    cidr="2001:db8:1::/64",
    ip_address="2001:db8:1::1",
    mac_address="fa:16:3e:00:00:01",
    network_name="net-web",
)
APP6 = RouterInterface(
    port_id=APP_PORT,
    network_id="net-app-id",
    subnet_id="subnet-app6-id",
    cidr="2001:db8:2::/64",
    ip_address="2001:db8:2::1",
    mac_address="fa:16:3e:00:00:02",
    network_name="net-app",
)

PROD_EGRESS = FirewallPolicy(
    id="p-prod-egress",
    name="prod-egress",
    rules=(
        FirewallRule(id="r-icmp", name="allow-icmp", protocol="icmp", action=ALLOW),
        FirewallRule(
            id="r-http",
            name="allow-http",
            protocol="tcp",
            destination_ip_address="198.51.100.0/24",
            destination_port="80",
            action=ALLOW,
        ),
        FirewallRule(
            id="r-deny-db",
            name="deny-db",
            protocol="tcp",
            destination_ip_address="198.51.100.10",
            destination_port="5432",
            action=DENY,
        ),
        FirewallRule(
            id="r-ssh", name="reject-ssh", protocol="tcp", destination_port="22", action=REJECT
        ),
        FirewallRule(id="r-off", name="disabled-any", action=ALLOW, enabled=False),
        FirewallRule(
            id="r-db", name="allow-db", protocol="tcp", destination_port="5432", action=ALLOW
        ),
        FirewallRule(
            id="r-v6-ping", name="allow-v6-ping", protocol="icmp", ip_version=6, action=ALLOW
        ),
    ),
)
APP_INGRESS = FirewallPolicy(
    id="p-app-ingress",
    name="app-ingress",
    rules=(
        FirewallRule(id="r-no-udp", name="deny-udp", protocol="udp", action=DENY),
        FirewallRule(
            id="r-from-web", name="from-web", source_ip_address="192.0.2.0/24", action=ALLOW
        ),
        FirewallRule(
            id="r-from-web6",
            name="from-web6",
            ip_version=6,
            source_ip_address="2001:db8:1::/64",
            action=ALLOW,
        ),
    ),
)
WEB_GROUP_OBJ = FirewallGroup(
    id=WEB_GROUP, name="web-fw", egress_policy=PROD_EGRESS, ports=(WEB_PORT,)
)
APP_GROUP_OBJ = FirewallGroup(
    id=APP_GROUP, name="app-fw", ingress_policy=APP_INGRESS, ports=(APP_PORT,)
)
ROUTER = Router(id="r1-0000-0000", name="r1", interfaces=(WEB, APP, WEB6, APP6))
STATE = RouterState(router=ROUTER, firewall_groups=(APP_GROUP_OBJ, WEB_GROUP_OBJ))
