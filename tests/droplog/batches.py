"""Flow batches (`sgweb.wire.packetlog`) as a test agent writes them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sgweb.wire.packetlog import Flow, FlowBatch

RUN = 1_800_000_000.0


def blocked_ssh(port, src: str = "203.0.113.9", sport: int = 40000, **fields: Any) -> Flow:
    """A TCP connect to the port's ssh from an address group "web" does not allow."""
    values: dict[str, Any] = {
        "port_id": str(port.pk), "direction": "ingress", "event": "DROP", "ethertype": "IPv4",
        "protocol": 6, "src": src, "dst": port.fixed_ips.first().ip_address, "src_port": sport,
        "dst_port": 22, "first_seen": RUN + 10, "last_seen": RUN + 11, "count": 3,
    }  # fmt: skip
    values.update(fields)
    return Flow(**values)


def blocked_ping(port, src: str = "198.51.100.7", **fields: Any) -> Flow:
    """A ping to the port (its groups must allow no ICMP from `src`)."""
    values: dict[str, Any] = {
        "port_id": str(port.pk), "direction": "ingress", "event": "DROP", "ethertype": "IPv4",
        "protocol": 1, "src": src, "dst": port.fixed_ips.first().ip_address, "icmp_type": 8,
        "icmp_code": 0, "first_seen": RUN + 20, "last_seen": RUN + 20, "count": 1,
    }  # fmt: skip
    values.update(fields)
    return Flow(**values)


@dataclass
class FlowAgent:
    host: str = "compute1"
    run: float = RUN
    sequence: int = 0

    def batch(self, *flows: Flow, shed: int = 0) -> dict[str, Any]:
        self.sequence += 1
        return FlowBatch(
            self.host, self.sequence, self.run, RUN + 100 + self.sequence, tuple(flows), shed
        ).as_dict()
