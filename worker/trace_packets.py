"""A trace's packets in words: each traversal the kernel reported becomes a `trace-packet`
message, its steps labelled with the agent's compiled rules (or a router's firewall), emitted
once, as soon as it has a verdict; the reporter keeps what the result needs (directions seen,
the deciding rule, whether the trace was incomplete)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import HostState
from sgweb.firewall.trace.labels import rule_label
from sgweb.kernel.ktrace import KernelPacket, KernelStep
from sgweb.wire import traces as protocol
from worker.router_trace import Describe
from worker.trace_verdict import kernel_verdict

Emit = Callable[[dict[str, Any]], None]


def describe_step(
    step: KernelStep, family: int, compiled: CompiledHost | None, state: HostState | None
) -> dict[str, Any]:
    label, rule_id = "", None
    if step.event == "policy":
        label = f"{step.chain} policy {step.verdict}"
    elif compiled is not None and step.position is not None:
        table = compiled.family(family).table(step.table)
        chain = table.chain(step.chain) if table is not None else None
        if chain is not None and chain.owned and 0 < step.position <= len(chain.rules):
            rule = chain.rules[step.position - 1]
            label, rule_id = rule_label(rule, state), rule.origin.rule_id
    if not label:
        label = step.rule_text or f"{step.chain} rule {step.position}"
    return {
        "table": step.table,
        "chain": step.chain,
        "position": step.position,
        "event": step.event,
        "verdict": step.verdict,
        "label": label,
        "rule_id": rule_id,
    }


def _direction(packet: KernelPacket, request: protocol.ProofRequest) -> str | None:
    if (packet.src, packet.dst) == (request.src, request.dst):
        return "request"
    if (packet.src, packet.dst) == (request.dst, request.src):
        return "reply"
    return None


def _decider(steps: list[dict[str, Any]]) -> str:
    for step in reversed(steps):
        if step["verdict"] in ("DROP", "ACCEPT") and step["table"] == "filter":
            for earlier in reversed(steps[: steps.index(step) + 1]):
                if earlier["rule_id"] or "default drop" in earlier["label"]:
                    return cast(str, earlier["label"])
            return cast(str, step["label"])
    return "no decision seen"


class PacketReporter:
    """Emits each traced traversal once, as soon as it has a verdict (or at the end)."""

    def __init__(
        self,
        request: protocol.ProofRequest,
        agent: Any,
        emit: Emit,
        describe: Describe | None = None,
    ) -> None:
        self.request = request
        self.host = agent.host
        applied = agent.applied
        self.compiled = applied.compiled if applied is not None else None
        self.state = applied.state if applied is not None else None
        # How a traversal's steps are put in words: the host's port chains, or (a router's
        # hop) the router's firewall.
        self.describe: Describe = describe or self._describe_host
        self.emit = emit
        self.reported: set[int] = set()
        self.directions: list[tuple[str, str | None]] = []
        self.deciding = ""
        self.lost: str | None = None  # why the trace that was reported is incomplete

    @property
    def verdict(self) -> str | None:
        return kernel_verdict(self.directions, self.lost)

    def report(self, packets: list[KernelPacket], *, final: bool) -> None:
        for position, packet in enumerate(packets):
            direction = _direction(packet, self.request)
            if direction is None or position in self.reported:
                continue
            if packet.verdict is None and not final:
                continue  # still on its way through the rules
            self.reported.add(position)
            steps = self.describe(packet)
            verdict = packet.verdict or "unknown"
            self.directions.append((direction, packet.verdict))
            if verdict == "DROP" or (not self.deciding and direction == "request"):
                self.deciding = _decider(steps)
            self.emit({"type": "trace-packet", "trace_id": self.request.trace_id,
                       "index": len(self.reported) - 1, "direction": direction,
                       "host": self.host, "steps": steps, "verdict": verdict})  # fmt: skip

    def _describe_host(self, packet: KernelPacket) -> list[dict[str, Any]]:
        return [
            describe_step(step, packet.family, self.compiled, self.state)
            for step in packet.steps
            if not step.is_trace_rule
        ]

    def next_attempt(self) -> None:
        # A new tracer numbers its traversals from 0 again.
        self.reported = set()

    @property
    def saw_request(self) -> bool:
        return any(direction == "request" for direction, _verdict in self.directions)

    @property
    def settled(self) -> bool:
        """Observed enough: a dropped request, or a request and its reply."""
        kinds = {direction for direction, _verdict in self.directions}
        dropped = any(v == "DROP" for _d, v in self.directions)
        return "request" in kinds and (dropped or "reply" in kinds)
