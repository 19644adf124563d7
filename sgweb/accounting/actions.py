"""The writers of accounting data: add one agent document, prune what retention lets go.

`record` runs in the control worker for every `sgweb.wire.accounting` document. It decides from
the host's last counted reading whether the document is counted (see the wire module: never
twice, lost intervals said so), then in one transaction adds the deltas to the rule totals and
first/last hits, to every step of the rule, port and host series, and to the per-port origin
totals. Series are added with `INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n`
(SQLite and PostgreSQL alike), one statement per table and document.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest, Least

from sgweb.accounting.models import (
    FirewallRuleSample,
    HostAccounting,
    HostSample,
    PortOriginUsage,
    PortSample,
    RuleSample,
    RuleUsage,
)
from sgweb.networks.models import Host, Port
from sgweb.security.models import SecurityGroupRule
from sgweb.wire import accounting as wire

log = logging.getLogger(__name__)

SG_RULE = "sg-rule"


@dataclass(frozen=True, slots=True)
class Recorded:
    counted: bool
    lost_intervals: int = 0
    why: str = ""


def as_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _moment(unix: float) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


def record(data: dict[str, Any]) -> Recorded:
    """Count one agent document (see the module docstring)."""
    document = wire.parse_deltas(data)
    with transaction.atomic():
        host, _ = Host.objects.get_or_create(name=document.host)
        state, _ = HostAccounting.objects.select_for_update().get_or_create(host=host)
        lost = take_reading(state, document.host, document.reading, document.base, document.at)
        if lost is None:
            return Recorded(False, why="overlaps what was counted")
        state.last_read_ms = document.read_ms
        state.last_chains_waiting = document.chains_waiting
        totals = dict(state.chain_totals)
        for name, packets, size in document.chains:
            before = totals.get(name, [0, 0])
            totals[name] = [before[0] + packets, before[1] + size]
        state.chain_totals = totals
        state.save()
        _add(host, document)
    return Recorded(True, lost_intervals=lost)


def take_reading(
    state: Any, host: str, reading: wire.ReadingId, base: wire.ReadingId | None, at: float
) -> int | None:
    """Whether a stream's document is counted, from the last reading its state (a
    `HostAccounting` or `FirewallAccounting`) counted: None when it overlaps (dropped, the
    state saved), else how many intervals were lost before it (its reading is taken as the
    last one, for the caller to save)."""
    last = (state.run, int(state.seq)) if state.run is not None else None
    lost = wire.lost_between(last, base)
    if lost is None:
        state.dropped_documents += 1
        if last is not None and reading > last:
            # Its interval is given up, not pending: the next document follows on from it.
            state.run, state.seq = reading
        state.save(update_fields=["dropped_documents", "run", "seq"])
        log.warning(
            "accounting: dropped a document of %s that overlaps what was counted "
            "(base %s, counted up to %s)", host, base, last,
        )  # fmt: skip
        return None
    if lost:
        state.lost_intervals += lost
        state.last_loss_at = _moment(at)
        log.warning(
            "accounting: %s intervals of deltas from %s were lost (the queue was dropped: "
            "a Redis restart?)", lost, host,
        )  # fmt: skip
    state.run, state.seq = reading
    state.last_at = _moment(at)
    state.documents += 1
    return lost


def kept_steps(retention: Sequence[tuple[int, int]] | None = None) -> Sequence[int]:
    kept = settings.SGWEB_ACCOUNTING_RETENTION if retention is None else retention
    return [step for step, _keep in kept]


def _add(host: Host, document: wire.Deltas) -> None:
    at = document.at
    rules: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
    ports: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0])
    origins: dict[tuple[uuid.UUID, str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for origin in document.origins:
        port = as_uuid(origin.port_id)
        if origin.kind == SG_RULE:
            rule = as_uuid(origin.rule_id)
            if rule is not None:
                rules[rule][0] += origin.packets
                rules[rule][1] += origin.bytes
        if port is None:
            continue
        direction = origin.direction or ""
        if origin.verdict == wire.ACCEPT:
            ports[(port, direction)][0] += origin.packets
        elif origin.verdict == wire.DROP:
            ports[(port, direction)][1] += origin.packets
        key = (port, direction, origin.kind, origin.rule_id or "", origin.verdict)
        origins[key][0] += origin.packets
        origins[key][1] += origin.bytes
    known_rules = set(
        SecurityGroupRule.objects.filter(pk__in=list(rules)).values_list("pk", flat=True)
    )
    port_ids = {port for port, _direction in ports} | {key[0] for key in origins}
    known_ports = set(Port.objects.filter(pk__in=list(port_ids)).values_list("pk", flat=True))
    steps = kept_steps()
    port_steps = kept_steps(settings.SGWEB_ACCOUNTING_PORT_RETENTION)
    add_totals(RuleUsage, {k: v for k, v in rules.items() if k in known_rules}, at)
    add_samples(
        RuleSample, ("rule_id", "step", "bucket"), ("packets", "bytes"),
        [(rule.hex, step, int(at // step * step), p, b)
         for rule, (p, b) in rules.items() if rule in known_rules for step in steps],
    )  # fmt: skip
    add_samples(
        PortSample, ("port_id", "direction", "step", "bucket"), ("accepted", "dropped"),
        [(port.hex, direction, step, int(at // step * step), accepted, dropped)
         for (port, direction), (accepted, dropped) in ports.items()
         if port in known_ports and (accepted or dropped) for step in port_steps],
    )  # fmt: skip
    add_samples(
        HostSample, ("host_id", "chain", "step", "bucket"), ("packets", "bytes"),
        [(host.pk, name, step, int(at // step * step), p, b)
         for name, p, b in document.chains for step in steps],
    )  # fmt: skip
    _add_port_origins({k: v for k, v in origins.items() if k[0] in known_ports}, at)


def add_totals(model: Any, rules: dict[uuid.UUID, list[int]], at: float) -> None:
    """Add to the totals and first/last hits of rules (`RuleUsage`, `FirewallRuleUsage`)."""
    if not rules:
        return
    moment = _moment(at)
    existing = set(model.objects.filter(pk__in=list(rules)).values_list("pk", flat=True))
    model.objects.bulk_create(
        [model(rule_id=rule) for rule in rules if rule not in existing],
        ignore_conflicts=True,
    )
    for rule, (packets, size) in rules.items():
        model.objects.filter(pk=rule).update(
            packets=F("packets") + packets,
            bytes=F("bytes") + size,
            first_hit_at=Coalesce(Least(F("first_hit_at"), moment), moment),
            last_hit_at=Coalesce(Greatest(F("last_hit_at"), moment), moment),
        )


def _add_port_origins(
    origins: dict[tuple[uuid.UUID, str, str, str, str], list[int]], at: float
) -> None:
    if not origins:
        return
    PortOriginUsage.objects.bulk_create(
        [
            PortOriginUsage(port_id=port, direction=d, kind=k, rule_id=r, verdict=v)
            for (port, d, k, r, v) in origins
        ],
        ignore_conflicts=True,
    )
    add_samples(
        PortOriginUsage,
        ("port_id", "direction", "kind", "rule_id", "verdict"),
        ("packets", "bytes"),
        [(port.hex, d, k, r, v, p, b) for (port, d, k, r, v), (p, b) in origins.items()],
        also_set={"last_hit_at": _moment(at)},
    )


def add_samples(
    model: Any,
    key_columns: Sequence[str],
    value_columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    also_set: dict[str, Any] | None = None,
) -> int:
    """Insert rows, or add their values to the rows with the same key (one statement)."""
    rows = list(rows)
    if not rows:
        return 0
    if connection.vendor == "postgresql":
        # psycopg binds hex strings to uuid columns only with a cast.
        rows = [tuple(_pg_value(model, c, v) for c, v in zip(
            (*key_columns, *value_columns), row, strict=True)) for row in rows]  # fmt: skip
    table = connection.ops.quote_name(model._meta.db_table)
    quote = connection.ops.quote_name
    columns = [*key_columns, *value_columns]
    extra = also_set or {}
    names = ", ".join(quote(c) for c in [*columns, *extra])
    placeholders = ", ".join(["%s"] * (len(columns) + len(extra)))
    updates = ", ".join(
        [f"{quote(c)} = {table}.{quote(c)} + excluded.{quote(c)}" for c in value_columns]
        + [f"{quote(c)} = excluded.{quote(c)}" for c in extra]
    )
    conflict = ", ".join(quote(c) for c in key_columns)
    sql = (
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "
        f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    )
    tail = tuple(extra.values())
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(*row, *tail) for row in rows])
    return len(rows)


def _pg_value(model: Any, column: str, value: Any) -> Any:
    if column.endswith("_id") and isinstance(value, str) and len(value) == 32:
        return uuid.UUID(value)
    return value


# -- retention -----------------------------------------------------------------------------

_last_prune = 0.0
PRUNE_EVERY_S = 300.0


def prune(now: float | None = None) -> int:
    """Delete the buckets each step keeps no longer; returns how many rows went."""
    now = time.time() if now is None else now
    deleted = 0
    for model, retention in (
        (RuleSample, settings.SGWEB_ACCOUNTING_RETENTION),
        (FirewallRuleSample, settings.SGWEB_ACCOUNTING_RETENTION),
        (HostSample, settings.SGWEB_ACCOUNTING_RETENTION),
        (PortSample, settings.SGWEB_ACCOUNTING_PORT_RETENTION),
    ):
        for step, keep in retention:
            count, _ = model.objects.filter(step=step, bucket__lt=int(now - keep)).delete()
            deleted += count
        count, _ = model.objects.exclude(step__in=kept_steps(retention)).delete()  # not kept now
        deleted += count
    return deleted


def prune_now_and_then() -> int:
    """`prune`, at most every PRUNE_EVERY_S in this process (the control worker calls it)."""
    global _last_prune
    if time.monotonic() - _last_prune < PRUNE_EVERY_S:
        return 0
    _last_prune = time.monotonic()
    return prune()
