"""The kept accounting on the pages (issue 12): sparklines per rule, port and host charts.

Everything here comes from the series the control plane keeps (`sgweb.accounting`), not from
what a page happened to watch: "unused for N days" is the time since the rule's true last hit.
The charts' data go into the page as JSON (`json_script`) for static/sgweb/js/charts.js.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from sgweb.accounting import series
from sgweb.accounting.models import (
    FirewallAccounting,
    FirewallRuleSample,
    FirewallRuleUsage,
    HostAccounting,
    PortOriginUsage,
    RuleSample,
    RuleUsage,
)
from sgweb.networks.models import Host, Port
from sgweb.wire import accounting as wire

WINDOW_CHOICES = tuple(series.WINDOWS)  # "1h", "1d", "1w"
DEFAULT_WINDOW = "1h"
COLORS = {"accepted": "#1d7a46", "dropped": "#b42323"}
HOST_COLORS = {
    wire.HOST_FORWARD: "#1f5fbf",
    wire.HOST_INPUT: "#7a4fbf",
    wire.HOST_SG_CHAIN: "#1d7a46",
    wire.HOST_FALLBACK: "#b42323",
}


@dataclass(frozen=True, slots=True)
class RuleUsageView:
    packets: int
    bytes: int
    window_packets: int
    first_hit_at: Any
    last_hit_at: Any
    unused_days: int
    never_hit: bool


def window_key(request: HttpRequest) -> str:
    """The page's window switch (?window=1h|1d|1w); anything else reads as the default."""
    key = request.GET.get("window", DEFAULT_WINDOW)
    return key if key in series.WINDOWS else DEFAULT_WINDOW


def _span(key: str, max_points: int, of: str = "rules") -> series.Window:
    return series.window(series.WINDOWS[key], max_points=max_points, of=of)


def group_usage(rules: Sequence[Any], key: str) -> dict[str, Any]:
    """Sets `rule.kept` (a RuleUsageView) on each rule; returns the sparklines' JSON."""
    return _kept_usage(rules, key, (RuleSample, RuleUsage))


def firewall_usage(rules: Sequence[Any], key: str) -> dict[str, Any]:
    """`group_usage` for firewall rules (issue 16): their hits summed over routers and nodes.
    The caller passes only rules whose hits the user may read (a shared rule of another
    project has none: `sgweb.accounting.api.firewall`)."""
    return _kept_usage(rules, key, (FirewallRuleSample, FirewallRuleUsage))


def _kept_usage(rules: Sequence[Any], key: str, models: tuple[Any, Any]) -> dict[str, Any]:
    samples, totals = models
    span = _span(key, series.SPARK_POINTS)
    ids = [rule.pk for rule in rules]
    values = series.rule_series(ids, span, fields=("packets",), model=samples)
    usage = series.usage_of(ids, model=totals)
    now = time.time()
    for rule in rules:
        kept = usage.get(rule.pk)
        rule.kept = RuleUsageView(
            packets=kept.packets if kept else 0,
            bytes=kept.bytes if kept else 0,
            window_packets=sum(values[rule.pk]["packets"]),
            first_hit_at=kept.first_hit_at if kept else None,
            last_hit_at=kept.last_hit_at if kept else None,
            unused_days=series.unused_days(kept, rule.created_at, now),
            never_hit=kept is None or kept.last_hit_at is None,
        )
    return {
        "t": list(span.buckets()),
        "step": span.step,
        "series": {str(rule_id): values[rule_id]["packets"] for rule_id in ids},
    }


def port_usage(port: Port, key: str) -> dict[str, Any]:
    """Accepted and dropped packets per direction over the window, and the origin totals."""
    span = _span(key, series.DEFAULT_POINTS, of="ports")
    directions = series.port_series(port.id, span)
    chart = {
        "t": list(span.buckets()),
        "unit": f"packets per {span.step} s",
        "series": [
            {
                "label": f"{direction} {verdict}",
                "values": directions[direction][verdict],
                "color": COLORS[verdict],
                "dash": direction == "egress",
            }
            for direction in ("ingress", "egress")
            for verdict in ("accepted", "dropped")
        ],
    }
    totals = {
        f"{direction}_{verdict}": sum(directions[direction][verdict])
        for direction in ("ingress", "egress")
        for verdict in ("accepted", "dropped")
    }
    origins = list(PortOriginUsage.objects.filter(port=port).order_by("direction", "-packets"))
    return {"chart": chart, "window_totals": totals, "origins": origins, "step": span.step}


def host_usage(host: Host, key: str) -> dict[str, Any]:
    """The host-wide chains over the window, their totals, and where accounting stands."""
    span = _span(key, series.DEFAULT_POINTS)
    chains = series.host_series(host.pk, span)
    state = HostAccounting.objects.filter(host=host).first()
    firewall = FirewallAccounting.objects.filter(host=host).first()  # a network node's routers
    totals = state.chain_totals if state is not None else {}
    rows = [
        {
            "name": name,
            "packets": totals.get(name, [0, 0])[0],
            "bytes": totals.get(name, [0, 0])[1],
            "window_packets": sum(chains[name]["packets"]),
        }
        for name in wire.HOST_CHAINS
    ]
    chart = {
        "t": list(span.buckets()),
        "unit": f"packets per {span.step} s",
        "series": [
            {"label": name, "values": chains[name]["packets"], "color": HOST_COLORS[name]}
            for name in wire.HOST_CHAINS
        ],
    }
    return {"chart": chart, "chains": rows, "state": state, "step": span.step,
            "firewall": firewall}  # fmt: skip
