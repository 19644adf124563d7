"""The drop log between the agents and the control plane (issue 13); pure.

A logged port's chains send packets to the host's NFLOG groups (`sgweb.firewall.packetlog`)
with the prefix ``"<EVENT> <direction> <port id>"``. The agent receives them, decodes each into
its 5-tuple and aggregates bursts into flows: packets with the same key (port, direction, event,
family, protocol, addresses, ports or ICMP type/code) within `FLOW_WINDOW_S` of the flow's last
packet belong to one flow (first seen, last seen, count). Every `SEND_INTERVAL_S` (or when
`MAX_FLOWS_PER_BATCH` flows are ready) the agent sends the closed and the still-open flows'
news as one `TASK_RECORD_FLOWS` task (a `FlowBatch` document) to the control queue.

Bounded memory: an agent keeps at most `MAX_OPEN_FLOWS` open flows; what it cannot keep (new
flows beyond the bound, a full send queue) it sheds and counts in `shed`, so the control plane
can say "N log packets were shed on this host" instead of pretending it saw everything.

`decided_by` names what decided the packet as the kernel rule's origin tells it, where the agent
knows it (``"fallback"`` for the default drop, ``"sg-rule:<rule id>"`` for an ACCEPT log rule
copy); None: the control plane explains the flow with the tracer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASK_RECORD_FLOWS = "sgweb.packetlogs.record_flows"  # agent -> control: one batch of flows

FLOW_WINDOW_S = 5.0
SEND_INTERVAL_S = 0.5
MAX_OPEN_FLOWS = 10_000
MAX_FLOWS_PER_BATCH = 500

EVENT_ACCEPT = "ACCEPT"
EVENT_DROP = "DROP"
EVENTS = (EVENT_ACCEPT, EVENT_DROP)


@dataclass(frozen=True, slots=True)
class Flow:
    port_id: str
    direction: str  # "ingress" | "egress", as seen from the VM
    event: str  # EVENT_ACCEPT | EVENT_DROP
    ethertype: str  # "IPv4" | "IPv6"
    protocol: int  # the IP protocol number (1 icmp, 6 tcp, 17 udp, 58 ipv6-icmp, ...)
    src: str
    dst: str
    src_port: int | None = None  # tcp/udp/sctp/udplite
    dst_port: int | None = None
    icmp_type: int | None = None  # icmp/ipv6-icmp
    icmp_code: int | None = None
    first_seen: float = 0.0  # wall-clock seconds
    last_seen: float = 0.0
    count: int = 1  # packets the agent received for this flow (after the kernel's rate limit)
    decided_by: str | None = None
    ct_state: str | None = None  # "NEW", "INVALID", ... where the packet carried it

    def key(self) -> tuple[Any, ...]:
        return (
            self.port_id, self.direction, self.event, self.ethertype, self.protocol, self.src,
            self.dst, self.src_port, self.dst_port, self.icmp_type, self.icmp_code,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class FlowBatch:
    host: str
    sequence: int  # counts the agent's batches since it started (with `run`, orders them)
    run: float  # when the agent process started
    sent_at: float
    flows: tuple[Flow, ...] = ()
    shed: int = 0  # log packets the agent dropped since its previous batch (bounded memory)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "sequence": self.sequence,
            "run": self.run,
            "sent_at": self.sent_at,
            "flows": [flow.as_dict() for flow in self.flows],
            "shed": self.shed,
        }


class FlowBatchError(ValueError):
    pass


_OPTIONAL_INTS = ("src_port", "dst_port", "icmp_type", "icmp_code")


def parse_flow_batch(data: dict[str, Any]) -> FlowBatch:
    """The document from its JSON form; a malformed one is refused whole."""
    try:
        flows = tuple(_parse_flow(item) for item in data["flows"])
        batch = FlowBatch(
            host=str(data["host"]),
            sequence=int(data["sequence"]),
            run=float(data["run"]),
            sent_at=float(data["sent_at"]),
            flows=flows,
            shed=int(data.get("shed", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowBatchError(f"malformed flow batch: {exc}") from None
    if batch.shed < 0:
        raise FlowBatchError("malformed flow batch: negative shed count")
    return batch


def _parse_flow(item: dict[str, Any]) -> Flow:
    optional = {
        name: None if item.get(name) is None else int(item[name]) for name in _OPTIONAL_INTS
    }
    flow = Flow(
        port_id=str(item["port_id"]),
        direction=str(item["direction"]),
        event=str(item["event"]),
        ethertype=str(item["ethertype"]),
        protocol=int(item["protocol"]),
        src=str(item["src"]),
        dst=str(item["dst"]),
        first_seen=float(item["first_seen"]),
        last_seen=float(item["last_seen"]),
        count=int(item.get("count", 1)),
        decided_by=None if item.get("decided_by") is None else str(item["decided_by"]),
        ct_state=None if item.get("ct_state") is None else str(item["ct_state"]),
        **optional,
    )
    if flow.event not in EVENTS or flow.direction not in ("ingress", "egress"):
        raise ValueError(f"flow event/direction {flow.event!r}/{flow.direction!r}")
    if flow.ethertype not in ("IPv4", "IPv6") or flow.count < 1:
        raise ValueError(f"flow ethertype/count {flow.ethertype!r}/{flow.count}")
    return flow
