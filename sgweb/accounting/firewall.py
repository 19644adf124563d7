"""The writer of a network node's firewall accounting (issue 16): one agent document in.

`record_firewall` runs in the control worker for every `sgweb.wire.accounting.FirewallDeltas`
document, the port path's `actions.record` for firewall rules: the same decision on the node's
stream of readings (`actions.take_reading`: never counted twice, lost intervals said so), then in
one transaction the deltas go to each firewall rule's totals and first/last hit (summed over the
routers, groups and directions that hold it) and to every step of its series, and the built-in
origins (INVALID, established, the default drop) to the node's totals.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction

from sgweb.accounting.actions import (
    Recorded,
    add_samples,
    add_totals,
    as_uuid,
    kept_steps,
    take_reading,
)
from sgweb.accounting.models import FirewallAccounting, FirewallRuleSample, FirewallRuleUsage
from sgweb.fwaas.models import FirewallRule
from sgweb.networks.models import Host
from sgweb.wire import accounting as wire


def record_firewall(data: dict[str, Any]) -> Recorded:
    """Count one network node's firewall document (see the module docstring)."""
    document = wire.parse_firewall_deltas(data)
    with transaction.atomic():
        host, _ = Host.objects.get_or_create(name=document.host)
        state, _ = FirewallAccounting.objects.select_for_update().get_or_create(host=host)
        lost = take_reading(state, document.host, document.reading, document.base, document.at)
        if lost is None:
            return Recorded(False, why="overlaps what was counted")
        state.last_read_ms = document.read_ms
        rules: dict[uuid.UUID, list[int]] = defaultdict(lambda: [0, 0])
        builtin = dict(state.builtin_totals)
        for delta in document.rules:
            if delta.kind != wire.FW_RULE:
                before = builtin.get(delta.kind, [0, 0])
                builtin[delta.kind] = [before[0] + delta.packets, before[1] + delta.bytes]
                continue
            rule = as_uuid(delta.rule_id)
            if rule is not None:
                rules[rule][0] += delta.packets
                rules[rule][1] += delta.bytes
        state.builtin_totals = builtin
        state.save()
        _add_rules(rules, document.at)
    return Recorded(True, lost_intervals=lost)


def _add_rules(rules: dict[uuid.UUID, list[int]], at: float) -> None:
    """Totals and series of the rules that still exist (a rule deleted since is dropped)."""
    if not rules:
        return
    known = set(FirewallRule.objects.filter(pk__in=list(rules)).values_list("pk", flat=True))
    kept = {rule: counts for rule, counts in rules.items() if rule in known}
    add_totals(FirewallRuleUsage, kept, at)
    add_samples(
        FirewallRuleSample, ("rule_id", "step", "bucket"), ("packets", "bytes"),
        [(rule.hex, step, int(at // step * step), p, b)
         for rule, (p, b) in kept.items() for step in kept_steps()],
    )  # fmt: skip
