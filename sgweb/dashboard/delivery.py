"""Where a change went: after a rule, group or port change, the page it was made on says which
hosts it reaches and follows it there ("applied on 2/2 hosts (revision 5) in 0.4 s",
"compute1: no agent, pending").

The view wraps its action in `sgweb.dispatch.tracking_delivery`, which collects each host the
change reaches and the revision of that host's state that carries it. `remember` keeps that in
the session until the next page is drawn (like a flash message); `take` turns it into what the
page shows first, from the hosts' rows and apply history. From then on `live.js` follows the
hosts' `apply` and `host-status` messages on `/ws/events` and rewrites the same sentence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest

from sgweb.dashboard.hoststate import statuses
from sgweb.dispatch import Delivery
from sgweb.hostsync.models import HostEvent, HostEventKind
from sgweb.networks.models import Host

SESSION_KEY = "dashboard_deliveries"
KEPT = 3  # changes waiting to be shown; a fourth pushes out the oldest
SHOWN_HOSTS = 12  # hosts named one by one; the rest are counted
APPLIED_KINDS = (HostEventKind.APPLY, HostEventKind.AGENT_START)


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


@dataclass
class DeliveryView:
    what: str
    at: float
    hosts: list[HostDelivery] = field(default_factory=list)

    @property
    def applied(self) -> list[HostDelivery]:
        return [host for host in self.hosts if host.state == "applied"]

    @property
    def css(self) -> str:
        if any(host.state == "failed" for host in self.hosts):
            return "bad"
        if len(self.applied) == len(self.hosts):
            return "ok"
        return "pending"

    @property
    def sentence(self) -> str:
        return sentence(self.hosts)

    def as_json(self) -> str:
        """What live.js needs to follow the change (a data attribute: no inline script)."""
        return json.dumps(
            {
                "at": self.at,
                "hosts": [
                    {
                        "name": h.name,
                        "revision": h.revision,
                        "state": h.state,
                        "seconds": h.seconds,
                        "error": h.error,
                    }
                    for h in self.hosts
                ],
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


def sentence(hosts: list[HostDelivery]) -> str:
    """The change's journey in one sentence (live.js says it the same way)."""
    if not hosts:
        return "No host is affected: nothing to apply."
    applied = [h for h in hosts if h.state == "applied"]
    head = f"Applied on {len(applied)}/{len(hosts)} hosts"
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


def remember(request: HttpRequest, delivery: Delivery, what: str) -> None:
    """Keep the change's hosts for the next page drawn in this session."""
    kept = list(request.session.get(SESSION_KEY, []))[-(KEPT - 1) :]
    kept.append({"what": what[:200], "at": delivery.at, "hosts": dict(delivery.hosts)})
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
    view = DeliveryView(what=str(item.get("what") or ""), at=at)
    for host, status in zip(hosts, statuses(hosts), strict=True):
        revision = targets.get(host.name)
        view.hosts.append(_host_delivery(host, status.key, revision, at))
    return view


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
