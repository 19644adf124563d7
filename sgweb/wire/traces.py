"""What the control plane and host agents agree on for traces (pure: the agent imports it).

The control plane sends `TASK_PROVE` to the host's queue with a `ProofRequest` as a dict; the
agent sends each protocol message (`trace-packet`, `trace-result`) back to the control queue as
`TASK_RECORD_EVENT`, which stores it on the Trace and forwards it to the trace's watchers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sgweb.wire.sync import host_token

TASK_PROVE = "sgweb.agent.prove_trace"
TASK_RECORD_EVENT = "sgweb.traces.record_event"

MODE_PROBE = "probe"  # a lab host: send real packets from the source VM's namespace
MODE_OBSERVE = "observe"  # anything else: watch real traffic for a bounded time

STATUS_PENDING = "pending"
STATUS_RUNNING = "running"
STATUS_DONE = "done"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
STATUS_OBSERVED = "observed"
FINAL_STATUSES = (STATUS_DONE, STATUS_FAILED, STATUS_TIMEOUT, STATUS_OBSERVED)

OBSERVE_S = 10.0

# A flow across hosts is proved hop by hop: the prover (the source's host, else the
# destination's) sends the probe and traces its hop; every other host of the flow gets the same
# request with role ROLE_HOP, starts its own scoped trace, says "ready" in Redis and traces its
# hop until the prover says "done" (or HOP_WINDOW_S passes), then leaves its hop result there.
# The prover waits for "ready" before probing and composes the per-hop trace-result.
ROLE_PROVE = "prove"
ROLE_HOP = "hop"
READY_TIMEOUT_S = 6.0  # how long the prover waits for another host's tracer to be ready
HOP_WINDOW_S = 20.0  # the longest a hop host traces (it stops earlier once the prover is done)
HOP_RESULT_WAIT_S = 6.0  # how long the prover waits for a hop host's result after "done"


@dataclass(frozen=True, slots=True)
class ProofRequest:
    trace_id: str
    host: str
    mode: str
    family: int
    protocol: str  # "tcp" | "udp" | "icmp" | "ipv6-icmp"
    src: str
    dst: str
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    static_verdict: str = "DROP"
    source_netns: str | None = None  # the lab VM namespace the probe is sent from
    source_mac: str | None = None  # that VM's MAC, checked before sending
    observe_s: float = OBSERVE_S
    extra: dict[str, Any] = field(default_factory=dict)
    role: str = ROLE_PROVE
    prover_host: str | None = None  # for ROLE_HOP: the host that sends the probe
    # The hosts of the flow in order, each {"host", "static": ACCEPT|DROP|None (not reached),
    # "traced": whether its agent is asked to trace, "why": why not}. Empty: one host only.
    # A router's hop (a routed trace) also has "router_id" and "router" (its name): its network
    # node traces that router's namespace instead of its own.
    hops: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProofRequest:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def board_key(prefix: str, trace_id: str, host: str, what: str) -> str:
    """Redis key where the hosts of one trace meet ("ready", "hop" result, "done")."""
    return f"{prefix}:trace:{trace_id}:{host_token(host)}:{what}"


def result_message(
    trace_id: str, status: str, static_verdict: str, kernel_verdict: str | None, summary: str
) -> dict[str, Any]:
    """A `trace-result` message (the control plane's own, when no agent could prove it)."""
    agrees = None if kernel_verdict is None else kernel_verdict == static_verdict
    return {
        "type": "trace-result",
        "trace_id": trace_id,
        "status": status,
        "static_verdict": static_verdict,
        "kernel_verdict": kernel_verdict,
        "agrees": agrees,
        "summary": summary,
        "at": time.time(),
    }
