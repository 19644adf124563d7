"""How control-plane objects read on screen: host sync states, rule protocols and ports, presets.

Kept apart from views so templates, views and tests share one wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

# An agent that has not reported for this long is shown down even if its last report was good:
# heartbeats come every few seconds, so a minute and a half of silence means it is gone.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)

ICMP_PROTOCOLS = {"icmp", "1", "ipv6-icmp", "icmpv6", "58"}
PORTED_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "6", "17", "132", "136"}
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp"}


HOST_STATES = ("in-sync", "syncing", "failed", "down", "unknown")


@dataclass(frozen=True, slots=True)
class HostStatusView:
    key: str  # in-sync | syncing | failed | down | unknown
    label: str
    css: str
    detail: str


def host_status(host: Any, now: datetime | None = None) -> HostStatusView:
    now = now or timezone.now()
    heartbeat = host.last_heartbeat_at
    if host.status == "down" or (heartbeat and now - heartbeat > HEARTBEAT_STALE_AFTER):
        since = f"last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else "no heartbeat"
        return HostStatusView("down", "Down", "bad", f"Agent not reporting ({since})")
    if host.status == "failed" or host.last_error:
        return HostStatusView("failed", "Failed", "bad", host.last_error or "The last apply failed")
    if heartbeat is None and host.status == "unknown":
        return HostStatusView("unknown", "No agent", "", "No agent has reported for this host yet")
    if host.desired_revision > host.applied_revision or host.status == "syncing":
        return HostStatusView(
            "syncing",
            "Syncing",
            "warn syncing",
            f"Applying revision {host.desired_revision} (applied {host.applied_revision})",
        )
    return HostStatusView("in-sync", "In sync", "ok", f"Revision {host.applied_revision} applied")


def rule_protocol_text(rule: Any) -> str:
    protocol = rule.protocol
    if protocol in (None, "", "any"):
        return "any"
    name = PROTOCOL_NAMES.get(str(protocol))
    return f"{name} ({protocol})" if name else str(protocol)


def rule_ports_text(rule: Any) -> str:
    """Ports as Neutron admins read them; ICMP rules carry type/code in the same two fields."""
    protocol = (rule.protocol or "").lower()
    low, high = rule.port_range_min, rule.port_range_max
    if protocol in ICMP_PROTOCOLS:
        if low is None:
            return "any type"
        if high is None:
            return f"type {low}"
        return f"type {low} code {high}"
    if low is None and high is None:
        return "any"
    if low == high or high is None:
        return str(low)
    return f"{low}\u2013{high}"  # an en dash, as ranges are typeset


@dataclass(frozen=True, slots=True)
class RulePreset:
    key: str
    label: str
    protocol: str
    port_range_min: int | None = None
    port_range_max: int | None = None
    # A preset may stand for several Neutron rules (DNS is udp/53 and tcp/53).
    protocols: tuple[str, ...] = ()

    def as_data(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "port_range_min": self.port_range_min,
            "port_range_max": self.port_range_max,
        }

    def expand(self) -> list[dict[str, Any]]:
        """The rule fields this preset creates."""
        protocols = self.protocols or (self.protocol,)
        return [
            {
                "protocol": protocol or None,
                "port_range_min": self.port_range_min,
                "port_range_max": self.port_range_max,
            }
            for protocol in protocols
        ]


RULE_PRESETS: tuple[RulePreset, ...] = (
    RulePreset("ssh", "SSH", "tcp", 22, 22),
    RulePreset("http", "HTTP", "tcp", 80, 80),
    RulePreset("https", "HTTPS", "tcp", 443, 443),
    RulePreset("icmp", "ICMP (ping)", "icmp", 8, None),
    RulePreset("dns", "DNS", "udp", 53, 53, protocols=("udp", "tcp")),
    RulePreset("all-tcp", "All TCP", "tcp", 1, 65535),
    RulePreset("all-udp", "All UDP", "udp", 1, 65535),
    RulePreset("all-icmp", "All ICMP", "icmp", None, None),
    RulePreset("custom", "Custom", "", None, None),
)
PRESETS_BY_KEY = {preset.key: preset for preset in RULE_PRESETS}

PROTOCOL_CHOICES: tuple[tuple[str, str], ...] = (
    ("", "Any protocol"),
    ("tcp", "TCP"),
    ("udp", "UDP"),
    ("icmp", "ICMP"),
    ("ipv6-icmp", "ICMPv6"),
    ("sctp", "SCTP"),
    ("gre", "GRE"),
    ("esp", "ESP"),
    ("ah", "AH"),
    ("vrrp", "VRRP"),
)


def host_status_filter(key: str, now: datetime | None = None) -> Any:
    """The database filter selecting the hosts `host_status` would show with `key`."""
    from django.db.models import F, Q

    now = now or timezone.now()
    down = Q(status="down") | Q(last_heartbeat_at__lt=now - HEARTBEAT_STALE_AFTER)
    failed = ~down & (Q(status="failed") | ~Q(last_error=""))
    unknown = ~down & ~failed & Q(last_heartbeat_at__isnull=True, status="unknown")
    syncing = (
        ~down
        & ~failed
        & ~unknown
        & (Q(desired_revision__gt=F("applied_revision")) | Q(status="syncing"))
    )
    in_sync = ~down & ~failed & ~unknown & ~syncing
    return {
        "down": down,
        "failed": failed,
        "unknown": unknown,
        "syncing": syncing,
        "in-sync": in_sync,
    }[key]
