"""Host states for pages: the database's view of applies joined with the agents' heartbeats.

Agents publish heartbeats to Redis (`sgweb.hostsync.status`), one key per host, so a page asks
for all of its hosts in one MGET. When Redis cannot be reached the pages still work and fall
back to what the database last heard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.utils import timezone

from sgweb.dashboard.presentation import HOST_STATES, HostStatusView, host_status
from sgweb.hostsync.status import host_liveness
from sgweb.networks.models import Host

log = logging.getLogger(__name__)

# Fields host_status reads; enough to classify every host without loading whole rows.
STATUS_FIELDS = (
    "name",
    "status",
    "last_heartbeat_at",
    "last_error",
    "desired_revision",
    "applied_revision",
    "last_apply_at",
    "desired_digest",
    "applied_digest",
)
ATTENTION_ORDER = {"failed": 0, "down": 1, "syncing": 2, "unknown": 3, "in-sync": 4}


def liveness_for(names: Iterable[str]) -> dict[str, Any] | None:
    """name -> Liveness, or None when heartbeats cannot be read at all."""
    names = list(names)
    if not names:
        return {}
    try:
        live = host_liveness(names)
    except Exception:  # an unusable broker configuration must not take the page down
        log.warning("host heartbeats unavailable", exc_info=True)
        return None
    if any(entry.error for entry in live.values()):
        return None
    return live


def statuses(hosts: Sequence[Host], now: datetime | None = None) -> list[HostStatusView]:
    now = now or timezone.now()
    live = liveness_for(host.name for host in hosts)
    return [host_status(host, now, live.get(host.name) if live else None) for host in hosts]


def classify_all(now: datetime | None = None) -> dict[str, list[str]]:
    """Every host's name by state (one query and one MGET, whatever the number of hosts)."""
    hosts = list(Host.objects.only(*STATUS_FIELDS).order_by("name"))
    by_state: dict[str, list[str]] = {key: [] for key in HOST_STATES}
    for host, status in zip(hosts, statuses(hosts, now), strict=True):
        by_state[status.key].append(host.name)
    return by_state


def needing_attention_first(
    limit: int, now: datetime | None = None
) -> tuple[list[Any], dict[str, int]]:
    """The first `limit` hosts, failed and down ones first, and the count in every state."""
    hosts = list(Host.objects.order_by("name"))
    rows = list(zip(hosts, statuses(hosts, now), strict=True))
    counts = {key: 0 for key in HOST_STATES}
    for _host, status in rows:
        counts[status.key] += 1
    rows.sort(key=lambda row: (ATTENTION_ORDER[row[1].key], row[0].name))
    return rows[:limit], {key: n for key, n in counts.items() if n}
