"""Which stored flows a user may see, narrowed by the filters the API and the pages share.

Every read goes through `visible_flows`: a member sees the flows of their projects' ports
only, admins and readers every project's. Filters: `port_id`, `security_group_id` (the flows of
the group's ports), `host`, `project_id`, `direction`, `event`, `protocol` (a name or a number),
`address` (either end), `port` (either end's TCP/UDP port), `since` (Unix seconds or ISO 8601).
A malformed filter is refused with a clear message (`Invalid`), never ignored.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from sgweb.droplog.models import DropFlow, HostDropLog
from sgweb.droplog.representation import PROTOCOL_NUMBERS
from sgweb.networks.models import Port
from sgweb.tenancy.access import scope, sees_all_projects
from sgweb.tenancy.errors import Invalid

FILTERS = (
    "port_id", "security_group_id", "host", "project_id", "direction", "event", "protocol",
    "address", "port", "since",
)  # fmt: skip
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def visible_flows(user: Any) -> QuerySet[DropFlow]:
    return scope(user, DropFlow.objects.all())


def _uuid(field: str, text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise Invalid.from_errors({field: [f"{text!r} is not an id."]}) from None


def _since(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid.from_errors(
            {"since": [f"{text!r} is neither Unix seconds nor an ISO 8601 time."]}
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _protocol(text: str) -> int:
    name = text.strip().lower()
    if name in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[name]
    if name.isdigit() and 0 <= int(name) <= 255:
        return int(name)
    raise Invalid.from_errors({"protocol": [f"{text!r}: give tcp, udp, icmp or a number 0-255."]})


def _choice(field: str, text: str, choices: tuple[str, ...]) -> str:
    value = text.strip()
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise Invalid.from_errors({field: [f"Must be one of {', '.join(choices)}."]})


def filtered(flows: QuerySet[DropFlow], params: Mapping[str, str]) -> QuerySet[DropFlow]:
    """The flows matching every given filter (empty values are no filter)."""
    given = {key: str(params.get(key) or "").strip() for key in FILTERS}
    if given["port_id"]:
        flows = flows.filter(port_id=_uuid("port_id", given["port_id"]))
    if given["security_group_id"]:
        group = _uuid("security_group_id", given["security_group_id"])
        flows = flows.filter(port__group_links__security_group_id=group)
    if given["host"]:
        flows = flows.filter(host=given["host"])
    if given["project_id"]:
        flows = flows.filter(project_id=_uuid("project_id", given["project_id"]))
    if given["direction"]:
        flows = flows.filter(
            direction=_choice("direction", given["direction"], ("ingress", "egress"))
        )
    if given["event"]:
        flows = flows.filter(event=_choice("event", given["event"], ("DROP", "ACCEPT")))
    if given["protocol"]:
        flows = flows.filter(protocol=_protocol(given["protocol"]))
    if given["address"]:
        try:
            address = str(ipaddress.ip_address(given["address"]))
        except ValueError:
            raise Invalid.from_errors({"address": ["Give one IP address."]}) from None
        flows = flows.filter(Q(src=address) | Q(dst=address))
    if given["port"]:
        text = given["port"]
        if not text.isdigit() or not 0 <= int(text) <= 65535:
            raise Invalid.from_errors({"port": ["Give a port number 0-65535."]})
        flows = flows.filter(Q(dst_port=int(text)) | Q(src_port=int(text)))
    if given["since"]:
        flows = flows.filter(last_seen__gte=_since(given["since"]))
    return flows


def limit_of(params: Mapping[str, str]) -> int:
    text = str(params.get("limit") or "").strip()
    if not text:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Invalid.from_errors({"limit": [f"Give a number 1-{MAX_LIMIT}."]})
    return int(text)


def newest_first(flows: QuerySet[DropFlow]) -> QuerySet[DropFlow]:
    return flows.order_by("-last_seen", "-id")


def shed_by_host(user: Any, host: str = "") -> list[dict[str, Any]]:
    """What agents could not keep (log packets shed under load), per host: every host for those
    who see every project, the hosts of their ports for a member."""
    states = HostDropLog.objects.filter(shed__gt=0)
    if host:
        states = states.filter(host=host)
    if not sees_all_projects(user):
        ports = scope(user, Port.objects.filter(host__isnull=False))
        states = states.filter(host__in=ports.values("host__name"))
    return [
        {"host": state.host, "shed": state.shed, "last_batch_at": state.last_batch_at}
        for state in states.order_by("host")
    ]


def top_dropping_ports(
    user: Any, hours: float = 1.0, limit: int = 5, project_id: Any = None
) -> list[dict[str, Any]]:
    """The ports with the most dropped packets seen in the last `hours` (the overview's list).

    A flow counts with its whole count when its last packet falls in the window: a flow's
    packets are not kept per minute, so this is "drops of flows active in the last hour"."""
    since = timezone.now() - timedelta(hours=hours)
    flows = visible_flows(user)
    if project_id is not None:
        flows = flows.filter(project_id=project_id)
    rows = (
        flows.filter(event="DROP", last_seen__gte=since)
        .values("port_id", "port__name", "host")
        .annotate(packets=Sum("count"), flows=Count("id"))
        .order_by("-packets", "port_id")[:limit]
    )
    return [
        {
            "port_id": str(row["port_id"]),
            "port_name": row["port__name"] or str(row["port_id"]),
            "host": row["host"],
            "packets": row["packets"],
            "flows": row["flows"],
        }
        for row in rows
    ]
