"""Where a change went: after a rule, group or port change, the page it was made on says which
hosts it reaches and follows it there ("applied on 2/2 hosts (revision 5) in 0.4 s",
"compute1: no agent, pending").

The view wraps its action in `sgweb.dispatch.tracking_delivery`, which collects each host the
change reaches and the revision of that host's state that carries it. `remember` keeps that in
the session until the next page is drawn (like a flash message); `take` turns it into what the
page shows first, from the hosts' rows and apply history. From then on `live.js` follows the
hosts' `apply` and `host-status` messages on `/ws/events` and rewrites the same sentence.

A router or firewall change goes to network nodes instead, as a router state numbered by a
counter of its own: those are the view's `nodes`, read from the nodes' last router apply
(`NodeRouterApply`) and followed through `router-apply` messages ("applied on network1
(revision 4) in 0.3 s", "network1: no agent, pending").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

from sgweb.dashboard.hoststate import statuses
from sgweb.dispatch import Delivery
from sgweb.fwaas.models import NodeRouterApply
from sgweb.hostsync.models import HostEvent, HostEventKind
from sgweb.networks.models import Host

SESSION_KEY = "dashboard_deliveries"
KEPT = 3  # changes waiting to be shown; a fourth pushes out the oldest
SHOWN_HOSTS = 12  # hosts named one by one; the rest are counted
APPLIED_KINDS = (HostEventKind.APPLY, HostEventKind.AGENT_START)
NOTHING = "No host is affected: nothing to apply."


@dataclass
class HostDelivery:
    name: str
    revision: int | None  # the host's revision that carries the change (None: not known yet)
    state: str  # applied | pending | no-agent | down | failed
    seconds: float | None = None  # from the commit to the host's apply
    error: str = ""

    @property
    def detail(self) -> str:
        """This host's part without its name ("no agent, pending")."""
        if self.state == "applied":
            took = f" in {format_seconds(self.seconds)}" if self.seconds is not None else ""
            return f"applied revision {self.revision}{took}"
        if self.state == "failed":
            return f"apply failed, the previous rules stay ({self.error})"
        if self.state == "no-agent":
            return "no agent, pending"
        if self.state == "down":
            return "agent down, pending"
        if self.revision is None:
            return "queued"
        return f"applying revision {self.revision}"

    @property
    def words(self) -> str:
        return f"{self.name}: {self.detail}"


def _as_dicts(hosts: list[HostDelivery]) -> list[dict[str, Any]]:
    return [
        {"name": h.name, "revision": h.revision, "state": h.state, "seconds": h.seconds,
         "error": h.error}
        for h in hosts
    ]  # fmt: skip


@dataclass
class DeliveryView:
    what: str
    at: float
    hosts: list[HostDelivery] = field(default_factory=list)
    nodes: list[HostDelivery] = field(default_factory=list)  # network nodes' router states
    nothing: str = NOTHING  # what a change that reaches nothing says

    @property
    def applied(self) -> list[HostDelivery]:
        return [host for host in self.hosts + self.nodes if host.state == "applied"]

    @property
    def css(self) -> str:
        every = self.hosts + self.nodes
        if any(host.state == "failed" for host in every):
            return "bad"
        if len(self.applied) == len(every):
            return "ok"
        return "pending"

    @property
    def sentence(self) -> str:
        parts = []
        if self.hosts or not self.nodes:
            parts.append(sentence(self.hosts, nothing=self.nothing))
        if self.nodes:
            parts.append(node_sentence(self.nodes))
        return " ".join(parts)

    def as_json(self) -> str:
        """What live.js needs to follow the change (a data attribute: no inline script)."""
        return json.dumps(
            {
                "at": self.at,
                "hosts": _as_dicts(self.hosts),
                "nodes": _as_dicts(self.nodes),
                "nothing": self.nothing,
            }
        )


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 0.05:
        return "under 0.1 s"  # "0.0 s" reads as if nothing was measured
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{round(seconds)} s"


def _revisions(hosts: list[HostDelivery]) -> str:
    known = sorted({h.revision for h in hosts if h.revision is not None})
    if not known:
        return ""
    if len(known) == 1:
        return f"revision {known[0]}"
    return f"revisions {known[0]}\u2013{known[-1]}"


def sentence(hosts: list[HostDelivery], *, noun: str = "hosts", nothing: str = NOTHING) -> str:
    """The change's journey in one sentence (live.js says it the same way)."""
    if not hosts:
        return nothing
    applied = [h for h in hosts if h.state == "applied"]
    head = f"Applied on {len(applied)}/{len(hosts)} {noun}"
    revisions = _revisions(applied or hosts)
    if revisions:
        head += f" ({revisions})"
    times = [h.seconds for h in applied if h.seconds is not None]
    if applied and times and len(applied) == len(hosts):
        head += f" in {format_seconds(max(times))}"
    others = [h for h in hosts if h.state != "applied"]
    if not others:
        return head + "."
    named = "; ".join(h.words for h in others[:SHOWN_HOSTS])
    more = f"; {len(others) - SHOWN_HOSTS} more" if len(others) > SHOWN_HOSTS else ""
    return f"{head}; {named}{more}."


def node_sentence(nodes: list[HostDelivery]) -> str:
    """A router change's journey: one node is named ("Applied on network1 (revision 4) in
    0.3 s."), several are counted like hosts."""
    if len(nodes) != 1:
        return sentence(nodes, noun="network nodes")
    node = nodes[0]
    if node.state != "applied":
        return f"{node.words}."
    took = f" in {format_seconds(node.seconds)}" if node.seconds is not None else ""
    return f"Applied on {node.name} (revision {node.revision}){took}."


def remember(
    request: HttpRequest, delivery: Delivery, what: str, *, nothing: str = NOTHING
) -> None:
    """Keep the change's hosts (and network nodes) for the next page drawn in this session."""
    kept = list(request.session.get(SESSION_KEY, []))[-(KEPT - 1) :]
    item: dict[str, Any] = {"what": what[:200], "at": delivery.at, "hosts": dict(delivery.hosts)}
    if delivery.nodes:
        item["nodes"] = dict(delivery.nodes)
    if nothing != NOTHING:
        item["nothing"] = nothing[:200]
    kept.append(item)
    request.session[SESSION_KEY] = kept


def take(request: HttpRequest) -> list[DeliveryView]:
    """The changes waiting to be shown, as they stand now; shown once, then forgotten."""
    if request.method != "GET" or SESSION_KEY not in request.session:
        return []
    kept = request.session.pop(SESSION_KEY, [])
    return [take_one(item) for item in kept]


def _applied_at(host: Host, revision: int) -> float | None:
    event = (
        HostEvent.objects.filter(host=host, kind__in=APPLIED_KINDS, revision__gte=revision)
        .order_by("at", "id")
        .first()
    )
    if event is None:
        return host.last_apply_at.timestamp() if host.last_apply_at else None
    finished: Any = (event.detail or {}).get("finished_at")
    if isinstance(finished, int | float | str):
        try:
            return float(finished)
        except ValueError:
            pass
    return event.at.timestamp()


def take_one(item: dict[str, Any]) -> DeliveryView:
    """One remembered change as it stands now."""
    at = float(item.get("at") or datetime.now(tz=UTC).timestamp())
    targets: dict[str, int | None] = item.get("hosts") or {}
    hosts = list(Host.objects.filter(name__in=targets).order_by("name"))
    view = DeliveryView(
        what=str(item.get("what") or ""), at=at, nothing=str(item.get("nothing") or NOTHING)
    )
    for host, status in zip(hosts, statuses(hosts), strict=True):
        revision = targets.get(host.name)
        view.hosts.append(_host_delivery(host, status.key, revision, at))
    view.nodes = _node_deliveries(item.get("nodes") or {}, at)
    return view


def _node_deliveries(targets: dict[str, int | None], at: float) -> list[HostDelivery]:
    if not targets:
        return []
    nodes = list(Host.objects.filter(name__in=targets).order_by("name"))
    applies = {a.host_name: a for a in NodeRouterApply.objects.filter(host_name__in=targets)}
    return [
        _node_delivery(node.name, status.key, targets.get(node.name), applies.get(node.name), at)
        for node, status in zip(nodes, statuses(nodes), strict=True)
    ]


def _carries(last: NodeRouterApply, revision: int | None, at: float) -> bool:
    """Is the node's last apply about the change? Its revision, or one after it; with the
    revision not known (publishing was handed on), any apply recorded since the commit."""
    if revision is not None:
        return last.revision >= revision
    return last.updated_at.timestamp() >= at


def _node_delivery(
    name: str, status: str, revision: int | None, last: NodeRouterApply | None, at: float
) -> HostDelivery:
    """One network node's part, from its agent's last router apply. Only the last one is kept,
    so the time is known when that one is the change's own revision."""
    if last is not None and _carries(last, revision, at):
        if not last.ok:
            return HostDelivery(name, revision, "failed", error=last.error or "apply failed")
        # Timed only by its own apply, and one after the commit (a change that left the node's
        # state as it was is carried by the revision already in force: no time to say).
        took = last.updated_at.timestamp() - at
        own = revision is None or last.revision == revision
        seconds = took if own and took >= 0 else None
        return HostDelivery(name, revision or last.revision, "applied", seconds)
    # The node's port status says whether an agent runs there; a port apply that failed does
    # not make its routers fail, so that status only counts for liveness.
    if status == "unknown":
        return HostDelivery(name, revision, "no-agent")
    if status == "down":
        return HostDelivery(name, revision, "down")
    return HostDelivery(name, revision, "pending")


def _host_delivery(host: Host, status: str, revision: int | None, at: float) -> HostDelivery:
    if revision is not None and host.applied_revision >= revision:
        applied_at = _applied_at(host, revision)
        seconds = applied_at - at if applied_at is not None else None
        return HostDelivery(host.name, revision, "applied", seconds)
    if status == "failed":
        return HostDelivery(host.name, revision, "failed", error=host.last_error or "apply failed")
    if status == "unknown":
        return HostDelivery(host.name, revision, "no-agent")
    if status == "down":
        return HostDelivery(host.name, revision, "down")
    return HostDelivery(host.name, revision, "pending")
