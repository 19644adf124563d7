"""Per-rule hits of a security group, summed over every port and host that uses it.

The agents store their latest reading of every chain somebody watched (`wire.readings_key`) and
the last time each rule's count rose (`wire.last_hit_key`); this sums what was observed, for a
page's first paint and for the `rule-hits` messages of a group's watchers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from sgweb.hostsync.channel import channel
from sgweb.live.chains import SPOOF_ROLE, chain_roles
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup
from sgweb.wire import live as wire


def group_ports(group: SecurityGroup) -> dict[str, list[str]]:
    """host name -> ids of the group's ports bound to it."""
    result: dict[str, list[str]] = {}
    rows = Port.objects.filter(group_links__security_group=group, host__isnull=False).values_list(
        "id", "host__name"
    )
    for port_id, host in rows:
        result.setdefault(host, []).append(str(port_id))
    return result


def filtering_chain_keys(prefix: str, port_ids: Iterable[str]) -> list[str]:
    """The ingress and egress chains (both families) of these ports: where group rules live."""
    return [
        wire.chain_key(family, "filter", name)
        for port_id in port_ids
        for family in (4, 6)
        for name, role in chain_roles(prefix, port_id)
        if role != SPOOF_ROLE
    ]


def sum_readings(
    readings: Iterable[Mapping[str, Any]], rule_ids: Iterable[str]
) -> dict[str, dict[str, float]]:
    """rule id -> packets, bytes, pps summed over chain readings."""
    wanted = set(rule_ids)
    totals: dict[str, dict[str, float]] = {}
    for reading in readings:
        for rule in reading.get("rules", ()):
            rule_id = rule.get("rule_id")
            if rule_id not in wanted:
                continue
            total = totals.setdefault(rule_id, {"packets": 0, "bytes": 0, "pps": 0.0})
            total["packets"] += rule.get("packets", 0)
            total["bytes"] += rule.get("bytes", 0)
            total["pps"] += rule.get("pps", 0.0)
    return totals


def rule_hits_message(
    group_id: str,
    rule_ids: list[str],
    totals: Mapping[str, Mapping[str, float]],
    last_hits: Mapping[str, float | None],
    ports: int,
    at: float,
) -> dict[str, Any]:
    return {
        "type": "rule-hits",
        "group_id": group_id,
        "at": at,
        "rules": [
            {
                "rule_id": rule_id,
                "packets": int(totals.get(rule_id, {}).get("packets", 0)),
                "bytes": int(totals.get(rule_id, {}).get("bytes", 0)),
                "pps": round(float(totals.get(rule_id, {}).get("pps", 0.0)), 3),
                "last_hit_at": last_hits.get(rule_id),
                "ports": ports,
            }
            for rule_id in rule_ids
        ],
    }


def last_hits(client: Any, prefix: str, rule_ids: list[str]) -> dict[str, float | None]:
    if not rule_ids:
        return {}
    values = client.hmget(wire.last_hit_key(prefix), rule_ids)
    return {
        rule_id: (float(value) if value is not None else None)
        for rule_id, value in zip(rule_ids, values, strict=True)
    }


def group_rule_hits(group: SecurityGroup) -> dict[str, Any]:
    """The latest `rule-hits` message from what the agents have observed (zeros where nothing
    was watched yet; `last_hit_at` null for a rule never seen hit)."""

    via = channel()
    client, prefix = via.redis, via.prefix
    chain_prefix = settings.FIREWALL_CHAIN_PREFIX
    rule_ids = [
        str(rule_id)
        for rule_id in group.rules.order_by("created_at", "id").values_list("id", flat=True)
    ]
    hosts = group_ports(group)
    readings = []
    at = 0.0
    for host, port_ids in hosts.items():
        keys = filtering_chain_keys(chain_prefix, port_ids)
        for raw in client.hmget(wire.readings_key(prefix, host), keys):
            if raw is None:
                continue
            reading = json.loads(raw)
            readings.append(reading)
            at = max(at, float(reading.get("at") or 0.0))
    ports = sum(len(ids) for ids in hosts.values())
    return rule_hits_message(
        str(group.pk),
        rule_ids,
        sum_readings(readings, rule_ids),
        last_hits(client, prefix, rule_ids),
        ports,
        at or wire.now(),
    )
