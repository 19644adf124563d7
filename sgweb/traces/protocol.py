"""What the control plane and host agents agree on for traces (pure: the agent imports it).

The control plane sends `TASK_PROVE` to the host's queue with a `ProofRequest` as a dict; the
agent sends each protocol message (`trace-packet`, `trace-result`) back to the control queue as
`TASK_RECORD_EVENT`, which stores it on the Trace and forwards it to the trace's watchers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProofRequest:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})
