"""The worked example of a path across router r1 (tests/firewall/fwaas/example.py): web-1 on
compute1 in net-web (192.0.2.5), app-db (198.51.100.10) and app-1 (198.51.100.11) on compute2
in net-app.

web-1's group "web" lets out tcp 22, 80, 5432 and 8080 and icmp (no udp);
app's group "app" lets in tcp 5432 and 8080 from net-web and icmp (no tcp 80).
"""

from __future__ import annotations

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import HostState, Port, SecurityGroup, SecurityGroupRule
from sgweb.firewall.trace.flow import HostTarget


def _rule(rule_id: str, direction: str, protocol: str, port: int | None = None,
          prefix: str | None = None) -> SecurityGroupRule:  # fmt: skip
    return SecurityGroupRule(rule_id, direction, "IPv4", protocol, port, port, prefix)


WEB_SG = SecurityGroup(
    "g-web",
    "web",
    rules=(
        *(_rule(f"r-out-{port}", "egress", "tcp", port) for port in (22, 80, 5432, 8080)),
        _rule("r-out-icmp", "egress", "icmp"),
    ),
)
APP_SG = SecurityGroup(
    "g-app",
    "app",
    rules=(
        _rule("r-in-pg", "ingress", "tcp", 5432, "192.0.2.0/24"),
        _rule("r-in-8080", "ingress", "tcp", 8080, "192.0.2.0/24"),
        _rule("r-in-icmp", "ingress", "icmp"),
    ),
)

WEB_1 = Port(
    "c0ffee01-0000-4000-8000-000000000001",
    "fa:16:3e:10:00:01",
    ("192.0.2.5",),
    ("g-web",),
    host="compute1",
    network_id="net-web-id",
    name="web-1",
)
APP_DB = Port(
    "c0ffee02-0000-4000-8000-000000000002",
    "fa:16:3e:20:00:02",
    ("198.51.100.10",),
    ("g-app",),
    host="compute2",
    network_id="net-app-id",
    name="app-db",
)
APP_1 = Port(
    "c0ffee03-0000-4000-8000-000000000003",
    "fa:16:3e:20:00:03",
    ("198.51.100.11",),
    ("g-app",),
    host="compute2",
    network_id="net-app-id",
    name="app-1",
)

COMPUTE1_STATE = HostState(ports=(WEB_1,), security_groups=(WEB_SG,), host="compute1")
COMPUTE2_STATE = HostState(ports=(APP_DB, APP_1), security_groups=(APP_SG,), host="compute2")
COMPUTE1 = HostTarget("compute1", COMPUTE1_STATE, compile_host(COMPUTE1_STATE))
COMPUTE2 = HostTarget("compute2", COMPUTE2_STATE, compile_host(COMPUTE2_STATE))
