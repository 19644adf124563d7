"""Reading the kept accounting back: windows, steps and dense series (the API and the pages).

A window is a duration ending now (or at `end`); the step is one the retention keeps
(`settings.SGWEB_ACCOUNTING_RETENTION`), the finest that still covers the window and gives at
most `max_points` points unless the caller names one. A window or step that is malformed, longer
than what is kept, or would give more than MAX_POINTS points is refused with `Invalid` (400).
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.db import connection

from sgweb.accounting.models import HostSample, PortSample, RuleSample, RuleUsage
from sgweb.tenancy.errors import Invalid
from sgweb.wire.accounting import HOST_CHAINS

MAX_POINTS = 10_000  # per series, whatever the caller asks
DEFAULT_POINTS = 500
SPARK_POINTS = 120
_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
WINDOWS = {"1h": 3600, "1d": 86400, "1w": 604800}  # the pages' switch


def parse_duration(text: str, what: str) -> int:
    found = _DURATION.match(text or "")
    if not found or int(found.group(1)) == 0:
        raise Invalid(
            f"Invalid input for {what}: {text!r} is not a duration like 10s, 15m, 1h, 7d, 2w",
            errors={what: ["a duration like 10s, 15m, 1h, 7d, 2w"]},
        )
    return int(found.group(1)) * _UNITS[found.group(2)]


@dataclass(frozen=True, slots=True)
class Window:
    start: int  # first bucket start (Unix seconds)
    end: int  # Unix seconds, exclusive
    step: int

    @property
    def points(self) -> int:
        return (self.end - self.start) // self.step

    def buckets(self) -> range:
        return range(self.start, self.end, self.step)

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "step": self.step}


def retention(of: str = "rules") -> tuple[tuple[int, int], ...]:
    """The kept steps of rule and host series, or of port series (`of="ports"`)."""
    if of == "ports":
        return tuple(settings.SGWEB_ACCOUNTING_PORT_RETENTION)
    return tuple(settings.SGWEB_ACCOUNTING_RETENTION)


def window(
    length: str | int | None = "1h",
    step: str | int | None = None,
    end: str | float | None = None,
    *,
    max_points: int = DEFAULT_POINTS,
    now: float | None = None,
    of: str = "rules",
) -> Window:
    """The buckets of a request (see the module docstring); `of="ports"`: port series."""
    seconds = length if isinstance(length, int) else parse_duration(length or "1h", "window")
    kept = retention(of)
    longest = max(keep for _step, keep in kept)
    if seconds > longest:
        raise Invalid(
            f"Invalid input for window: {seconds} s is longer than the {longest} s kept",
            errors={"window": [f"at most {longest} s"]},
        )
    finish = _end(end, now)
    if step is None:
        usable = [s for s, keep in kept if keep >= seconds]
        fitting = [s for s in usable if seconds // s <= max_points]
        chosen = fitting[0] if fitting else usable[-1]
    else:
        chosen = step if isinstance(step, int) else parse_duration(step, "step")
        steps = {s: keep for s, keep in kept}
        if chosen not in steps:
            raise Invalid(
                f"Invalid input for step: {chosen} s is not a kept step {sorted(steps)}",
                errors={"step": [f"one of {sorted(steps)} seconds"]},
            )
        if steps[chosen] < seconds:
            raise Invalid(
                f"Invalid input for step: {chosen} s steps are kept {steps[chosen]} s only",
                errors={"step": ["not kept that long"]},
            )
    stop = (int(finish) // chosen + 1) * chosen  # the bucket holding `end` is included
    result = Window(stop - (seconds // chosen) * chosen, stop, chosen)
    if result.points > MAX_POINTS:
        raise Invalid(
            f"Invalid input for window: {result.points} points at {chosen} s steps "
            f"(at most {MAX_POINTS}); ask for a coarser step",
            errors={"window": ["too many points"]},
        )
    return result


def _end(end: str | float | None, now: float | None) -> float:
    current = time.time() if now is None else now
    if end is None or end == "":
        return current
    if isinstance(end, (int, float)):
        return float(end)
    try:
        return float(end)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(end.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Invalid(
            f"Invalid input for end: {end!r} is neither Unix seconds nor an ISO 8601 time",
            errors={"end": ["Unix seconds or ISO 8601"]},
        ) from None


def _dense(span: Window, values: Mapping[int, int]) -> list[int]:
    return [values.get(bucket, 0) for bucket in span.buckets()]


def rule_series(
    rule_ids: Iterable[uuid.UUID],
    span: Window,
    fields: tuple[str, ...] = ("packets", "bytes"),
    model: Any = RuleSample,
) -> dict[uuid.UUID, dict[str, list[int]]]:
    """rule -> {"packets": [...], "bytes": [...]} dense over the window's buckets (`fields`:
    only those, e.g. the group page's sparklines draw packets only); `model`: the samples of
    security-group rules (`RuleSample`) or of firewall rules (`FirewallRuleSample`)."""
    ids = list(rule_ids)
    if any(field not in ("packets", "bytes") for field in fields):
        raise ValueError(f"rule series fields are packets and bytes, not {fields}")
    if not ids:
        return {}  # an empty IN () has no SQL: Django raises EmptyResultSet (a group's 500)
    query = (
        model.objects.filter(
            rule_id__in=ids, step=span.step, bucket__gte=span.start, bucket__lt=span.end
        )
        .order_by("rule_id", "bucket")  # the key's order: no sort, and rows come per rule
        .values_list("rule_id", "bucket", *fields)
    )
    # Raw rows: Django's per-value converters were most of a group page's time (16,800 rows
    # for 100 rules over a week). Rows are keyed by the rule id as the database returns it (a
    # str on SQLite: hashing 6,000 UUIDs was a tenth of the sparklines' cost).
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    dense = {
        stored: _dense_rows(list(of_rule), span, len(fields))
        for stored, of_rule in groupby(rows, key=itemgetter(0))
    }
    points = span.points
    by_id = {
        (stored if isinstance(stored, uuid.UUID) else uuid.UUID(str(stored))): lists
        for stored, lists in dense.items()
    }
    out: dict[uuid.UUID, dict[str, list[int]]] = {}
    for rule in ids:
        lists = by_id.get(rule) or [[0] * points for _ in fields]
        out[rule] = dict(zip(fields, lists, strict=True))
    return out


def _dense_rows(rows: list[Any], span: Window, fields: int) -> list[list[int]]:
    """One rule's (rule, bucket, *values) rows, in bucket order, as dense lists per field."""
    last = span.start + (span.points - 1) * span.step
    if len(rows) == span.points and rows[0][1] == span.start and rows[-1][1] == last:
        # Every bucket is there (the key is unique, buckets are multiples of the step): the
        # values are the series as they stand, with no per-row index arithmetic.
        return [[row[2 + field] for row in rows] for field in range(fields)]
    lists = [[0] * span.points for _ in range(fields)]
    start, step = span.start, span.step
    for row in rows:
        at = (row[1] - start) // step
        for field in range(fields):
            lists[field][at] = row[2 + field]
    return lists


def usage_of(rule_ids: Iterable[uuid.UUID], model: Any = RuleUsage) -> dict[uuid.UUID, Any]:
    """rule -> its totals (`RuleUsage`, or `FirewallRuleUsage` for firewall rules)."""
    return {usage.rule_id: usage for usage in model.objects.filter(rule_id__in=list(rule_ids))}


def port_series(port_id: uuid.UUID, span: Window) -> dict[str, dict[str, list[int]]]:
    """direction -> {"accepted": [...], "dropped": [...]} dense over the window's buckets."""
    accepted: dict[str, dict[int, int]] = defaultdict(dict)
    dropped: dict[str, dict[int, int]] = defaultdict(dict)
    rows = PortSample.objects.filter(
        port_id=port_id, step=span.step, bucket__gte=span.start, bucket__lt=span.end
    ).values_list("direction", "bucket", "accepted", "dropped")
    for direction, bucket, ok, dropped_count in rows:
        accepted[direction][bucket] = ok
        dropped[direction][bucket] = dropped_count
    return {
        direction: {
            "accepted": _dense(span, accepted[direction]),
            "dropped": _dense(span, dropped[direction]),
        }
        for direction in ("ingress", "egress")
    }


def host_series(host_id: int, span: Window) -> dict[str, dict[str, list[int]]]:
    """host chain -> {"packets": [...], "bytes": [...]} dense over the window's buckets."""
    packets: dict[str, dict[int, int]] = defaultdict(dict)
    sizes: dict[str, dict[int, int]] = defaultdict(dict)
    rows = HostSample.objects.filter(
        host_id=host_id, step=span.step, bucket__gte=span.start, bucket__lt=span.end
    ).values_list("chain", "bucket", "packets", "bytes")
    for chain, bucket, count, size in rows:
        packets[chain][bucket] = count
        sizes[chain][bucket] = size
    return {
        chain: {"packets": _dense(span, packets[chain]), "bytes": _dense(span, sizes[chain])}
        for chain in HOST_CHAINS
    }


def unused_days(usage: Any, created_at: datetime, now: float | None = None) -> int:
    """Whole days since the rule's last hit (or since it was created, if never hit)."""
    since = usage.last_hit_at if usage is not None and usage.last_hit_at else created_at
    current = time.time() if now is None else now
    return max(0, int((current - since.timestamp()) // 86400))
