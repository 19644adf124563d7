"""How control-plane objects read on screen: host sync states, rule protocols and ports, presets.

Kept apart from views so templates, views and tests share one wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

# An agent that has not reported for this long is shown down even if its last report was good:
# heartbeats come every few seconds, so a minute and a half of silence means it is gone.
HEARTBEAT_STALE_AFTER = timedelta(seconds=90)

ICMP_PROTOCOLS = {"icmp", "1", "ipv6-icmp", "icmpv6", "58"}
PROTOCOL_NAMES = {"6": "tcp", "17": "udp", "1": "icmp", "58": "ipv6-icmp", "132": "sctp"}


HOST_STATES = ("in-sync", "syncing", "failed", "down", "unknown")


@dataclass(frozen=True, slots=True)
class HostStatusView:
    key: str  # in-sync | syncing | failed | down | unknown
    label: str
    css: str
    detail: str
    heartbeat_at: datetime | None = None
    # The agent's own heartbeat (sgweb.hostsync.status.Liveness) when Redis could be asked.
    live: Any = None


def _heartbeat(host: Any, live: Any, now: datetime) -> tuple[datetime | None, bool | None]:
    """The agent's last heartbeat and whether it is alive (None: nothing says either way)."""
    if live is not None:
        seen = live.last_seen
        heartbeat = None if seen is None else datetime.fromtimestamp(seen, tz=UTC)
        return heartbeat, bool(live.alive)
    heartbeat = host.last_heartbeat_at
    return heartbeat, None if heartbeat is None else now - heartbeat <= HEARTBEAT_STALE_AFTER


def host_status(host: Any, now: datetime | None = None, live: Any = None) -> HostStatusView:
    """A host's state as the dashboard shows it.

    `live` is the agent's heartbeat as read from Redis (the agents do not write heartbeats to
    the database). Without it (Redis unreachable) the database's last word is used.
    """
    heartbeat, alive = _heartbeat(host, live, now or timezone.now())

    def view(key: str, label: str, css: str, detail: str) -> HostStatusView:
        return HostStatusView(key, label, css, detail, heartbeat, live)

    # A host no agent ever reported for (a demo host, a binding to a host not set up yet) is
    # calm "No agent", not "Down": changes wait for it (syncing on paper), nothing is broken.
    never_reported = (
        host.last_apply_at is None
        and not host.applied_revision
        and heartbeat is None
        and host.status in ("unknown", "syncing")
    )
    if never_reported and not alive:
        return view(
            "unknown",
            "No agent",
            "",
            "No agent has ever reported for this host; changes wait until one starts",
        )
    if host.status == "down" or alive is False:
        since = f"last heartbeat {heartbeat:%Y-%m-%d %H:%M:%S} UTC" if heartbeat else "no heartbeat"
        return view("down", "Down", "bad", f"The agent is not reporting ({since})")
    if host.status == "failed" or host.last_error:
        return view("failed", "Failed", "bad", host.last_error or "The last apply failed")
    applied_digest = getattr(live, "applied_digest", None) or host.applied_digest
    other_state = bool(host.desired_digest and applied_digest != host.desired_digest)
    if other_state and host.desired_revision <= host.applied_revision:
        return view(
            "syncing",
            "Syncing",
            "warn syncing",
            "The agent holds another state than the one published; the reconciler repairs it",
        )
    if host.desired_revision > host.applied_revision or host.status == "syncing":
        return view(
            "syncing",
            "Syncing",
            "warn syncing",
            f"Applying revision {host.desired_revision} (applied {host.applied_revision})",
        )
    return view("in-sync", "In sync", "ok", f"Revision {host.applied_revision} applied")


@dataclass(frozen=True, slots=True)
class PortStatusView:
    label: str
    css: str
    detail: str


def port_status(port: Any, host: HostStatusView | None) -> PortStatusView:
    """A port's status as an admin reads it: Neutron's ACTIVE/DOWN, and whether its host's
    firewall holds its rules (the port's filtering is only as current as its host)."""
    if not port.admin_state_up:
        return PortStatusView("Down", "", "Administratively down (admin_state_up is false)")
    if port.host_id is None or host is None:
        return PortStatusView("Unbound", "", "Not bound to a host: no firewall holds it yet")
    if host.key == "in-sync":
        return PortStatusView("Active", "ok", f"Bound to {port.host.name}; {host.detail}")
    words = {
        "syncing": ("Active · syncing", "warn"),
        "unknown": ("Active · no agent", ""),
        "failed": ("Active · host failed", "bad"),
        "down": ("Active · host down", "bad"),
    }
    label, css = words.get(host.key, ("Active", ""))
    return PortStatusView(label, css, f"Bound to {port.host.name}; {host.detail}")


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
