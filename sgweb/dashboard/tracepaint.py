"""A kept packet trace as its page shows it: the static verdict and paths, the kernel's packets.

The trace's stored results are the protocol's messages (`trace-static`, `trace-packet`,
`trace-result`, see sgweb/live/PROTOCOL.md). The static path is the tracer's full walk (every
rule tried); the page shows only the lines that decided something: matched rules of the port
chains and the final verdict, each in security-group words, the deciding one highlighted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from sgweb.firewall.ir import (
    ORIGIN_ANTI_SPOOF,
    ORIGIN_ESTABLISHED,
    ORIGIN_FALLBACK,
    ORIGIN_JUMP,
    ORIGIN_SG_RULE,
)
from sgweb.firewall.trace.words import ORIGIN_STEP_WORDS, PLUMBING_ORIGINS

VERDICT_WORDS = {"ACCEPT": "Allowed", "DROP": "Dropped", "unknown": "Unknown"}
STATUS_WORDS = {
    "pending": ("Waiting for the kernel", "info syncing"),
    "running": ("Probing", "info syncing"),
    "observing": ("Watching traffic", "info syncing"),
    "done": ("Done", "ok"),
    "observed": ("Observed", "ok"),
    "failed": ("Failed", "bad"),
    "timeout": ("Timed out", "warn"),
}


@dataclass
class StepView:
    chain: str
    position: int | None
    label: str
    verdict: str  # RETURN / DROP / ACCEPT / JUMP:… / policy
    kind: str = ""
    rule_id: str | None = None
    group_id: str | None = None
    group_name: str | None = None
    text: str = ""
    deciding: bool = False
    plumbing: bool = False  # routing between chains; hidden unless "every step" is asked for

    @property
    def verdict_css(self) -> str:
        if self.verdict == "DROP":
            return "drop"
        if self.verdict in ("ACCEPT", "RETURN"):
            return "accept"
        return "jump"

    @property
    def chain_short(self) -> str:
        """`neutron-openvswi-i6e3f2eda-3` reads as `i6e3f2eda-3`: the prefix is always the same."""
        prefix = "neutron-openvswi-"
        return self.chain[len(prefix) :] if self.chain.startswith(prefix) else self.chain


@dataclass
class HopView:
    host: str
    leg: str
    reached: bool
    verdict: str
    explanation: str
    steps: list[StepView] = field(default_factory=list)


@dataclass
class StaticView:
    verdict: str
    explanation: str
    reason: str
    request: list[HopView]
    reply: list[HopView]
    reply_verdict: str | None

    @property
    def verdict_words(self) -> str:
        return VERDICT_WORDS.get(self.verdict, self.verdict)


def _target_word(target: str | None) -> str:
    if not target:
        return ""
    if target in ("ACCEPT", "DROP", "RETURN"):
        return target
    return f"JUMP:{target}"


def _label(origin: dict[str, Any], target: str, rules: dict[str, Any]) -> str:
    kind = origin.get("kind", "")
    if kind == ORIGIN_SG_RULE:
        rule = rules.get(str(origin.get("rule_id")))
        if rule is not None:
            return f"allow {rule.summary} (rule {str(rule.pk)[:8]} of {rule.group_name})"
        return f"allow: security group rule {str(origin.get('rule_id'))[:8]}"
    if kind == ORIGIN_ANTI_SPOOF:
        if target == "RETURN":
            return "anti-spoofing: the source is the port's own address and MAC"
        if target == "DROP":
            return "anti-spoofing: the source is not the port's address: drop"
        return "anti-spoofing: check the source address and MAC"
    if kind == ORIGIN_FALLBACK:
        return "default drop: no rule allowed it" if target == "DROP" else "no rule matched"
    return ORIGIN_STEP_WORDS.get(kind, kind or "rule")


def _hop(hop: dict[str, Any], rules: dict[str, Any]) -> HopView:
    details = hop.get("details") or {}
    view = HopView(
        host=hop.get("host", ""),
        leg=hop.get("leg", ""),
        reached=bool(hop.get("reached", True)),
        verdict=hop.get("verdict", ""),
        explanation=hop.get("explanation", ""),
    )
    for step in hop.get("path") or []:
        origin = step.get("origin") or {}
        if step.get("table", "filter") != "filter":
            continue
        if step.get("event") == "policy":
            view.steps.append(StepView(step["chain"], None, "chain policy", "policy"))
            continue
        if not step.get("matched") or origin.get("kind", ORIGIN_JUMP) in PLUMBING_ORIGINS:
            continue
        target = step.get("target", "")
        rule = rules.get(str(origin.get("rule_id"))) if origin.get("rule_id") else None
        view.steps.append(
            StepView(
                chain=step.get("chain", ""),
                position=step.get("position"),
                label=_label(origin, target, rules),
                verdict=_target_word(target),
                kind=origin.get("kind", ""),
                rule_id=origin.get("rule_id"),
                group_id=str(rule.security_group_id) if rule is not None else None,
                group_name=rule.group_name if rule is not None else None,
                text=step.get("rule", ""),
            )
        )
    _mark_deciding(view, details)
    return view


def _mark_deciding(view: HopView, details: dict[str, Any]) -> None:
    """The line that made the verdict: the allowing rule, or the DROP that ended the walk."""
    wanted = details.get("rule_id")
    candidates = [s for s in view.steps if wanted and s.rule_id == wanted]
    if not candidates and view.verdict == "DROP":
        candidates = [s for s in view.steps if s.verdict == "DROP"]
    if not candidates and details.get("reason") == "established":
        candidates = [s for s in view.steps if s.kind == ORIGIN_ESTABLISHED]
    if not candidates:
        candidates = [s for s in view.steps if s.kind == ORIGIN_SG_RULE]
    if candidates:
        candidates[-1].deciding = True


def rule_ids_in(static: dict[str, Any] | None) -> set[str]:
    """Every security-group rule id the static paths name, to load them in one query."""
    ids: set[str] = set()
    for flow in _flows(static):
        for hop in [*(flow.get("hops") or []), *(flow.get("reply_hops") or [])]:
            for step in hop.get("path") or []:
                rule_id = (step.get("origin") or {}).get("rule_id")
                if rule_id:
                    ids.add(str(rule_id))
            nearest = (hop.get("details") or {}).get("nearest_rule_id")
            if nearest:
                ids.add(str(nearest))
    return ids


def _flows(static: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not static:
        return []
    if "hops" in static:  # a bare flow_json
        return [static]
    return [flow for flow in (static.get("request"), static.get("reply")) if flow]


def static_view(static: dict[str, Any] | None, rules: dict[str, Any]) -> StaticView | None:
    """The `trace-static` message (or a bare flow) as the page's verdict card and paths."""
    if not static:
        return None
    flows = _flows(static)
    request = flows[0] if flows else {}
    reply_hops = list(request.get("reply_hops") or [])
    if not reply_hops and isinstance(static.get("reply"), dict):
        reply_hops = list(static["reply"].get("hops") or [])
    request_hops = [_hop(hop, rules) for hop in request.get("hops") or []]
    reply_views = [_hop(hop, rules) for hop in reply_hops]
    for hops in (request_hops, reply_views):
        # Where a leg was dropped, the drop is the deciding line: the hops before it only let
        # the packet pass on, so their allowing rules are not highlighted.
        if any(hop.verdict == "DROP" for hop in hops):
            for hop in hops:
                if hop.verdict != "DROP":
                    for step in hop.steps:
                        step.deciding = False
    return StaticView(
        verdict=static.get("verdict") or request.get("verdict", ""),
        explanation=static.get("explanation") or request.get("explanation", ""),
        reason=static.get("reason", ""),
        request=request_hops,
        reply=reply_views,
        reply_verdict=request.get("reply_verdict")
        or (static["reply"].get("verdict") if isinstance(static.get("reply"), dict) else None),
    )


@dataclass
class PacketView:
    index: int
    direction: str
    host: str
    verdict: str
    steps: list[StepView]
    order: str = ""  # packet_order: along the path
    router: str = ""  # a router's hop: the router whose namespace its network node traced

    @property
    def key(self) -> str:
        return f"{self.direction}-{self.index}-{self.host}"

    @property
    def deciding_label(self) -> str:
        return next((step.label for step in self.steps if step.deciding), "")

    @property
    def expanded(self) -> bool:
        """The first packets and any dropped one open; the rest of a long flow stay one line."""
        return self.index < 2 or self.verdict == "DROP"


def is_plumbing(step: dict[str, Any]) -> bool:
    """A kernel step that only routes the packet (raw-table zones, jumps between our chains).

    Kept in the page but folded, so the kernel's path reads like the static one; the same
    rule is in traces.js for packets that arrive live."""
    if step.get("rule_id"):
        return False
    if step.get("table", "filter") != "filter":
        return True
    return step.get("verdict") not in ("DROP", "ACCEPT", "RETURN") and step.get("event") != "policy"


def _mark_kernel_deciding(steps: list[StepView]) -> None:
    """The packet's deciding line: its DROP, else the last security-group rule it matched,
    else its last step."""
    chosen = next((s for s in reversed(steps) if s.verdict == "DROP"), None)
    chosen = chosen or next((s for s in reversed(steps) if s.rule_id), None)
    chosen = chosen or next((s for s in reversed(steps) if "ESTABLISHED" in s.label), None)
    chosen = chosen or (steps[-1] if steps else None)
    if chosen is not None:
        chosen.deciding = True


DIRECTION_ORDER = {"request": 0, "reply": 1}


def host_order(static: StaticView | None, router_host: str | None = None) -> list[str]:
    """The hosts in the order the request meets them (the static walk's order); a routed
    trace's network node (`router_host`, whose kernel traced the router) right after the
    source's host, where the packet meets the router."""
    order: list[str] = []
    for hop in [*(static.request if static else []), *(static.reply if static else [])]:
        if hop.host and hop.host not in order:
            order.append(hop.host)
    if router_host and router_host not in order:
        order.insert(min(1, len(order)), router_host)
    return order


def packet_order(packet: PacketView, hosts: list[str]) -> str:
    """A sort key that reads along the packet's path: the request before the reply, each in
    the order of the hosts it crosses (the reply crosses them backwards: it leaves the
    destination's host first), then the packets in the order they were sent (traces.js inserts
    arriving packets by the same key, `data-order`)."""
    along = list(reversed(hosts)) if packet.direction == "reply" else hosts
    rank = along.index(packet.host) if packet.host in along else len(along)
    return f"{DIRECTION_ORDER.get(packet.direction, 2)}-{rank:03d}-{packet.index:06d}"


def packet_views(
    events: list[dict[str, Any]],
    rules: dict[str, Any] | None = None,
    hosts: list[str] | None = None,
) -> list[PacketView]:
    """The kernel's packets along the path (`packet_order`), each rule in the words the static
    walk uses for it (the agent's label only for rules this page does not know)."""
    packets = []
    for event in events or []:
        if event.get("type") != "trace-packet":
            continue
        steps = [_kernel_step(step, rules or {}) for step in event.get("steps") or []]
        _mark_kernel_deciding(steps)
        packets.append(
            PacketView(
                index=int(event.get("index", 0)),
                direction=event.get("direction", "request"),
                host=event.get("host", ""),
                verdict=event.get("verdict", "unknown"),
                steps=steps,
                router=str(event.get("router") or ""),
            )
        )
    order = hosts or []
    for packet in packets:
        packet.order = packet_order(packet, order)
    packets.sort(key=lambda packet: packet.order)
    return packets


def _kernel_step(step: dict[str, Any], rules: dict[str, Any]) -> StepView:
    rule_id = step.get("rule_id")
    rule = rules.get(str(rule_id)) if rule_id else None
    label = step.get("label") or ""
    if rule is not None:
        label = _label({"kind": ORIGIN_SG_RULE, "rule_id": rule_id}, "", rules)
    return StepView(
        chain=step.get("chain", ""),
        position=step.get("position"),
        label=label,
        verdict=step.get("verdict", ""),
        rule_id=rule_id,
        group_id=str(rule.security_group_id) if rule is not None else None,
        group_name=rule.group_name if rule is not None else None,
        plumbing=is_plumbing(step),
    )


def kernel_rule_ids(events: list[dict[str, Any]]) -> set[str]:
    """The rule ids the kernel's packets name, to word them like the static walk."""
    return {
        str(step["rule_id"])
        for event in events or []
        if event.get("type") == "trace-packet"
        for step in event.get("steps") or []
        if step.get("rule_id")
    }


VERDICT_VERBS = {"ACCEPT": "allowed", "DROP": "dropped"}


def result_sentence(result: dict[str, Any] | None, packets: list[PacketView]) -> str:
    """The kernel's answer in one sentence: whether it agreed, which host decided and by which
    rule, and what rests on the rules alone."""
    if not result:
        return ""
    summary = str(result.get("summary") or "")
    kernel = result.get("kernel_verdict")
    agrees = result.get("agrees")
    if summary.startswith("no proof: "):
        why = summary[len("no proof: ") :]
        return f"Not proven in the kernel: {why}; the verdict above is the rules' alone."
    if kernel not in VERDICT_VERBS or agrees is None:
        label, _ = status_words(str(result.get("status", "")))
        return f"{label}: {summary}." if summary else f"{label}."
    decided_by = result.get("decided_by")
    deciding = next(
        (p for p in packets if p.verdict == kernel and (not decided_by or p.host == decided_by)),
        None,
    )
    host = decided_by or (deciding.host if deciding else "") or "the host"
    where = f" at “{deciding.deciding_label}”" if deciding and deciding.deciding_label else ""
    head = "The kernel agreed" if agrees else "The kernel disagreed"
    sentence = f"{head}: {host} {VERDICT_VERBS[kernel]} the packet{where}"
    if not agrees:
        rules_say = VERDICT_VERBS.get(str(result.get("static_verdict", "")), "otherwise")
        sentence += f", where the rules say {rules_say}"
    untraced = [str(h) for h in result.get("untraced_hosts") or []]
    if untraced:
        rests = "rests" if len(untraced) == 1 else "rest"
        sentence += f"; {', '.join(untraced)} {rests} on the rules (not traced)"
    traced = sum(1 for p in packets)
    if traced:
        sentence += f"; {traced} packet{'s' if traced != 1 else ''} traced"
    if result.get("probe_ok") is not None:
        sentence += (
            ", the probe was answered" if result["probe_ok"] else ", the probe got no answer"
        )
    return sentence + "."


def result_of(events: list[dict[str, Any]], kernel_result: Any) -> dict[str, Any] | None:
    """The final `trace-result`: the stored kernel result, else the last one in the events."""
    if isinstance(kernel_result, dict) and kernel_result.get("type") == "trace-result":
        return kernel_result
    event: dict[str, Any]  # (reversed() of a list of dicts with Any values is Any to mypy)
    for event in reversed(events or []):
        if event.get("type") == "trace-result":
            return event
    if isinstance(kernel_result, dict) and "agrees" in kernel_result:
        return kernel_result
    return None


def status_words(status: str) -> tuple[str, str]:
    return STATUS_WORDS.get(status, (status.replace("-", " ").capitalize(), ""))


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RULE_IN_TEXT = re.compile(rf"\brule ({_UUID})\b")


def linked_explanation(text: str, rules: dict[str, Any]) -> SafeString:
    """The tracer's sentence with each full rule id shortened and linked to its group's rules
    (the full id stays in the link's title, for copying)."""
    parts: list[str] = []
    last = 0
    for match in _RULE_IN_TEXT.finditer(text or ""):
        parts.append(escape(text[last : match.start()]))
        rule_id = match.group(1)
        rule = rules.get(rule_id)
        if rule is None:
            parts.append(escape(f"rule {rule_id[:8]}"))
        else:
            url = reverse("dashboard:security_group", args=[rule.security_group_id])
            parts.append(
                format_html(
                    '<a href="{}#rules" title="rule {}" data-rule-link="{}">rule {}</a>',
                    url,
                    rule_id,
                    rule_id,
                    rule_id[:8],
                )
            )
        last = match.end()
    parts.append(escape((text or "")[last:]))
    return mark_safe("".join(parts))


PROOF_MODES = {"probe": "sending real packets", "observe": "watching real traffic"}
NO_AGENT = "no proof: the agent of host "


@dataclass
class ProofLine:
    """Where and how the kernel proof ran, for the page's subtitle: "proven" only once the
    kernel gave a verdict, so a trace that failed, timed out or had no agent never says it."""

    state: str  # proven | proving | not-proven | "" (nothing to say)
    host: str
    how: str = ""  # "sending real packets" | "watching real traffic"
    why: str = ""  # what kept it from being proven, when that is known


def proof_line(
    host: str | None, mode: str | None, finished: bool, result: dict[str, Any] | None
) -> ProofLine:
    if not host:
        return ProofLine("", "")
    how = PROOF_MODES.get(mode or "", "")
    if not finished:
        return ProofLine("proving" if how else "", host, how)
    if result and result.get("kernel_verdict") in VERDICT_VERBS and how:
        return ProofLine("proven", host, how)
    summary = str((result or {}).get("summary") or "")
    why = "it has no running agent" if summary.startswith(NO_AGENT) else ""
    return ProofLine("not-proven", host, how, why)
