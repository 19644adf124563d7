"""The trace page's "one path" view of a trace between two networks: the source port's egress
security groups, the router's firewall groups, the destination port's ingress security groups,
read from the `path` of the trace-static message (sgweb.traces.routed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_LAYER_LABELS = {
    "source-egress": "source egress",
    "router": "router",
    "destination-ingress": "destination ingress",
    "destination-egress": "destination egress",
    "source-ingress": "source ingress",
}
_CSS = {"ACCEPT": "accept", "DROP": "drop", "REJECT": "drop"}
_STEP_VERDICTS = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN"}


@dataclass
class RouterStepView:
    group: str
    direction: str
    device: str
    network: str
    verdict: str  # ACCEPT | DROP | REJECT | RETURN (matched nothing: on to the next group)
    words: str  # the rule with its policy and position, or why the chain ended

    @property
    def css(self) -> str:
        return _CSS.get(self.verdict, "jump")


@dataclass
class LayerView:
    kind: str
    label: str
    title: str
    reached: bool
    verdict: str | None
    words: str
    deciding: bool
    steps: list[RouterStepView] = field(default_factory=list)
    not_consulted: list[str] = field(default_factory=list)

    @property
    def css(self) -> str:
        return _CSS.get(self.verdict or "", "jump")


@dataclass
class PathView:
    router_name: str
    verdict: str
    words: str
    layers: list[LayerView]
    reply_verdict: str | None = None
    reply_layers: list[LayerView] = field(default_factory=list)


def _step_words(step: dict[str, Any]) -> str:
    rule = step.get("rule")
    if step.get("reason") == "rule" and isinstance(rule, dict):
        name = rule.get("rule_name") or rule.get("rule_id")
        policy = rule.get("policy_name") or rule.get("policy_id")
        return f"rule {name} (policy {policy}, position {rule.get('position')})"
    reasons = {
        "default": f"no rule of policy {step.get('policy_name')} matched: default drop",
        "admin-down": "the group is administratively down",
        "established": "part of an established connection",
        "invalid": "conntrack state INVALID",
        "no-match": "no rule matched: on to the next jump",
    }
    return reasons.get(str(step.get("reason")), str(step.get("reason") or ""))


def _router_steps(router: dict[str, Any] | None) -> list[RouterStepView]:
    if not router:
        return []
    return [
        RouterStepView(
            group=str(step.get("group_name") or step.get("group_id") or ""),
            direction=str(step.get("direction") or ""),
            device=str(step.get("device") or ""),
            network=str(step.get("network_name") or ""),
            verdict=_STEP_VERDICTS.get(str(step.get("verdict")), str(step.get("verdict"))),
            words=_step_words(step),
        )
        for step in router.get("steps") or []
    ]


def _layers(layers: Any, deciding: Any) -> list[LayerView]:
    views = []
    for layer in layers or []:
        router = layer.get("router") if isinstance(layer.get("router"), dict) else None
        views.append(
            LayerView(
                kind=str(layer.get("kind")),
                label=_LAYER_LABELS.get(str(layer.get("kind")), str(layer.get("kind"))),
                title=str(layer.get("title") or ""),
                reached=bool(layer.get("reached")),
                verdict=layer.get("verdict"),
                words=str(layer.get("words") or ""),
                deciding=deciding is not None and layer.get("kind") == deciding,
                steps=_router_steps(router),
                not_consulted=list((router or {}).get("not_consulted") or []),
            )
        )
    return views


def path_view(static: dict[str, Any] | None) -> PathView | None:
    """None for a trace that crosses no router (the hosts' view says it all)."""
    path = (static or {}).get("path")
    if not isinstance(path, dict):
        return None
    return PathView(
        router_name=str(path.get("router_name") or ""),
        verdict=str(path.get("verdict") or ""),
        words=str(path.get("words") or ""),
        layers=_layers(path.get("layers"), path.get("deciding")),
        reply_verdict=path.get("reply_verdict"),
        reply_layers=_layers(path.get("reply_layers"), path.get("reply_deciding")),
    )
