"""The first paint of the live pages: the same messages the websockets send, shaped for templates.

Port pages and security-group pages render the `chains` / `rule-hits` message on the server
(`sgweb.live.chains.port_chains`, `sgweb.live.hits.group_rule_hits`), so the page reads correctly
before, and without, a socket; `static/sgweb/js/live.js` then updates the same cells in place.
Both functions reach the agents' data in Redis: a failure there costs the page its counters,
never the page itself.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sgweb.live import chains as live_chains
from sgweb.live import hits as live_hits

log = logging.getLogger(__name__)

ROLE_ORDER = {"ingress": 0, "egress": 1, "anti-spoofing": 2}
ROLE_WORDS = {
    "ingress": ("Ingress", "traffic to the VM, checked against the ingress rules"),
    "egress": ("Egress", "traffic from the VM, checked against the egress rules"),
    "anti-spoofing": ("Anti-spoofing", "the VM may only send from its own IP and MAC addresses"),
}
_TARGET = re.compile(r"\s-j\s+(\S+)")
# Kinds whose DROP is the firewall saying no (red), as opposed to plumbing or allowed traffic.


@dataclass
class RuleLine:
    position: int
    text: str
    label: str
    kind: str
    target: str
    rule_id: str | None = None
    group_id: str | None = None
    group_name: str | None = None

    @property
    def target_css(self) -> str:
        if self.target == "DROP":
            return "drop"
        if self.target in ("RETURN", "ACCEPT"):
            return "accept"
        return "jump"


@dataclass
class ChainView:
    name: str
    family: int
    role: str
    rules: list[RuleLine] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return ROLE_WORDS.get(self.role, (self.role.title(), ""))[0]

    @property
    def purpose(self) -> str:
        return ROLE_WORDS.get(self.role, ("", ""))[1]


@dataclass
class ChainsView:
    """What the port page's "Firewall chains" section shows."""

    state: str  # "ok" | "no-host" | "unavailable" | "no-chains"
    host: str = ""
    device: str = ""
    families: dict[int, list[ChainView]] = field(default_factory=dict)
    error: str = ""

    @property
    def family_list(self) -> list[tuple[int, list[ChainView]]]:
        return sorted(self.families.items())

    @property
    def rule_count(self) -> int:
        return sum(len(c.rules) for chains in self.families.values() for c in chains)


def target_of(text: str) -> str:
    match = _TARGET.search(text or "")
    if not match:
        return ""
    target = match.group(1)
    # Jumps to our own chains read better by their role letter than by the full name.
    return target if target in ("DROP", "RETURN", "ACCEPT") else "jump"


def chains_view(message: dict[str, Any]) -> ChainsView:
    """A `chains` message, grouped by family and ordered ingress, egress, anti-spoofing."""
    families: dict[int, list[ChainView]] = {}
    for chain in message.get("chains") or []:
        view = ChainView(
            name=chain["name"], family=int(chain.get("family", 4)), role=chain.get("role", "")
        )
        for rule in chain.get("rules") or []:
            view.rules.append(
                RuleLine(
                    position=int(rule["position"]),
                    text=rule.get("text", ""),
                    label=rule.get("label") or rule.get("text", ""),
                    kind=rule.get("kind", ""),
                    target=target_of(rule.get("text", "")),
                    rule_id=rule.get("rule_id"),
                    group_id=rule.get("group_id"),
                    group_name=rule.get("group_name"),
                )
            )
        families.setdefault(view.family, []).append(view)
    for chains in families.values():
        chains.sort(key=lambda c: (ROLE_ORDER.get(c.role, 9), c.name))
    return ChainsView(
        state="ok" if families else "no-chains",
        host=message.get("host") or "",
        device=message.get("device") or "",
        families=families,
    )


def port_chains_view(port: Any) -> ChainsView:
    if not port.port_security_enabled:
        return ChainsView(state="no-chains")
    if port.host_id is None:
        return ChainsView(state="no-host")
    try:
        message = live_chains.port_chains(port)
    except Exception as error:  # Redis or the compiler failing must not take the page down
        log.warning("chains of port %s unavailable", port.pk, exc_info=True)
        return ChainsView(state="unavailable", host=port.host.name, error=str(error))
    view = chains_view(message)
    view.host = view.host or port.host.name
    return view


@dataclass
class RuleHit:
    packets: int
    bytes: int
    pps: float
    last_hit_at: float | None
    ports: int


def group_hits(group: Any) -> dict[str, RuleHit]:
    """rule id -> hits, from the agents' latest readings of the chains somebody watched.

    The first paint never calls a rule unused: the readings cover only the ports that were
    being watched, so a zero may be a port nobody looked at yet. Once the page's own watch
    covers every port of the group, live.js marks the rules still at zero."""
    try:
        message = live_hits.group_rule_hits(group)
    except Exception:
        log.warning("rule hits of group %s unavailable", group.pk, exc_info=True)
        return {}
    hits = {
        str(entry["rule_id"]): RuleHit(
            packets=int(entry.get("packets") or 0),
            bytes=int(entry.get("bytes") or 0),
            pps=float(entry.get("pps") or 0.0),
            last_hit_at=entry.get("last_hit_at"),
            ports=int(entry.get("ports") or 0),
        )
        for entry in message.get("rules") or []
    }
    return hits
