"""The drop log's agent side on a real kernel: real pings and TCP connects through logged ports
reach the agent's flow table through the host's NFLOG groups and ulogd2, and leave it as
`sgweb.wire.packetlog` batches with the right 5-tuple within 2 s; a flood stays within the
kernel's rate limit and the agent's bounds while another port's drops still arrive; a state
without logging removes the NFLOG rules and ends the receiver.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from sgweb.firewall.model import HostState, LogSettings
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import SHARED_BRIDGE, remove_namespaces
from sgweb.wire import packetlog as wire
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.test_firewall_e2e import DB_PORT, PORTS, WEB_PORT, state
from worker.packetlog import FlowTable, PacketLog

pytestmark = pytest.mark.kernel

OUTSIDE_V4, OUTSIDE_V6 = "198.51.100.7", "2001:db8:1::7"
WEB_V4, DB_V4 = WEB_PORT.fixed_ips[0], DB_PORT.fixed_ips[0]
ARRIVES_WITHIN_S = 2.0


def logged(base: HostState, **events: str | None) -> HostState:
    """`base` with log events per port (web=..., db=...)."""
    by_id = {WEB_PORT.id: events.get("web"), DB_PORT.id: events.get("db")}
    ports = tuple(replace(p, log_events=by_id.get(p.id, p.log_events)) for p in base.ports)
    return replace(base, ports=ports)


class Capture:
    """The agent's send function: the documents, as the control plane would parse them."""

    def __init__(self) -> None:
        self.batches: list[wire.FlowBatch] = []

    def __call__(self, document: dict[str, Any]) -> None:
        self.batches.append(wire.parse_flow_batch(document))

    def flows(self, match: Callable[[wire.Flow], bool]) -> list[wire.Flow]:
        return [flow for batch in list(self.batches) for flow in batch.flows if match(flow)]

    def wait_for(self, match: Callable[[wire.Flow], bool], within: float) -> list[wire.Flow]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.flows(match)
            if found:
                return found
            time.sleep(0.02)
        return self.flows(match)


def packets_of(flows: list[wire.Flow]) -> int:
    """Packets in these reports: a flow is reported with its totals each time it grew."""
    counts: dict[tuple[Any, ...], int] = {}
    for flow in flows:
        identity = (*flow.key(), flow.first_seen)
        counts[identity] = max(counts.get(identity, 0), flow.count)
    return sum(counts.values())


@dataclass
class LoggedLab:
    lab: FirewallLab
    agent: PacketLog
    sent: Capture


@pytest.fixture
def logged_lab(kernel_runner: SubprocessRunner) -> Iterator[LoggedLab]:
    prefix = new_prefix()
    agent = None
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, SHARED_BRIDGE)
        lab.apply_fresh(logged(state(), web="ALL", db="DROP"))
        lab.settle()
        sent = Capture()
        agent = PacketLog("host1", kernel_runner, lab.host_ns, lambda: lab.state, sent)
        agent.tick()  # binds the groups before the first probe
        assert agent.receiver is not None and agent.receiver.alive
        agent.start()
        yield LoggedLab(lab, agent, sent)
    finally:
        if agent is not None:
            agent.stopping.set()
            agent.join(timeout=5)
            agent.close()
        remove_namespaces(prefix, kernel_runner)


@pytest.mark.parametrize("family", [4, 6])
def test_a_blocked_ping_arrives_as_a_drop_flow_of_the_port_within_two_seconds(
    logged_lab: LoggedLab, family: int
) -> None:
    logged_lab.lab.ping("outside", DB_PORT.id, family=family).assert_agrees(expected_ok=False)
    protocol, echo = (1, 8) if family == 4 else (58, 128)
    flows = logged_lab.sent.wait_for(
        lambda f: f.port_id == DB_PORT.id and f.protocol == protocol, ARRIVES_WITHIN_S
    )
    assert flows, f"no drop flow for the blocked IPv{family} ping"
    flow = flows[-1]
    assert (flow.event, flow.direction, flow.ethertype) == ("DROP", "ingress", f"IPv{family}")
    outside, db = (OUTSIDE_V4, DB_V4) if family == 4 else (OUTSIDE_V6, DB_PORT.fixed_ips[1])
    assert (flow.src, flow.dst, flow.icmp_type, flow.icmp_code) == (outside, db, echo, 0)
    assert flow.decided_by == "fallback" and flow.src_port is None


def test_a_blocked_tcp_connect_arrives_as_a_drop_flow_with_its_five_tuple(
    logged_lab: LoggedLab,
) -> None:
    logged_lab.lab.tcp("outside", WEB_PORT.id, 9).assert_agrees(expected_ok=False)
    flows = logged_lab.sent.wait_for(
        lambda f: f.port_id == WEB_PORT.id and f.dst_port == 9, ARRIVES_WITHIN_S
    )
    assert flows, "no drop flow for the blocked connect"
    flow = flows[-1]
    assert (flow.event, flow.direction, flow.protocol) == ("DROP", "ingress", 6)
    assert (flow.src, flow.dst) == (OUTSIDE_V4, WEB_V4)
    assert flow.src_port is not None and flow.src_port > 0
    assert flow.first_seen <= flow.last_seen <= time.time()


def test_a_connect_the_vm_may_not_make_arrives_as_an_egress_drop_flow(
    logged_lab: LoggedLab,
) -> None:
    logged_lab.lab.tcp(WEB_PORT.id, "outside", 22).assert_agrees(expected_ok=False)
    flows = logged_lab.sent.wait_for(
        lambda f: f.port_id == WEB_PORT.id and f.dst_port == 22, ARRIVES_WITHIN_S
    )
    assert flows, "no drop flow for the VM's blocked connect"
    flow = flows[-1]
    assert (flow.event, flow.direction, flow.protocol) == ("DROP", "egress", 6)
    assert (flow.src, flow.dst) == (WEB_V4, OUTSIDE_V4)


def test_an_allowed_connection_arrives_once_as_an_accept_flow_when_accepts_are_logged(
    logged_lab: LoggedLab,
) -> None:
    logged_lab.lab.tcp("outside", WEB_PORT.id, 8080).assert_agrees(expected_ok=True)
    accepted = logged_lab.sent.wait_for(
        lambda f: f.port_id == WEB_PORT.id and f.dst_port == 8080, ARRIVES_WITHIN_S
    )
    assert accepted, "no accept flow for the allowed connection"
    time.sleep(2 * logged_lab.agent.interval_s)  # whatever else would come, has come
    accepted = logged_lab.sent.flows(lambda f: f.port_id == WEB_PORT.id and f.protocol == 6)
    keys = {flow.key() for flow in accepted}
    # Only the SYN passes the ACCEPT log (the rest is ESTABLISHED); nothing else is logged.
    assert len(keys) == 1, accepted
    flow = accepted[-1]
    assert (flow.event, flow.direction, flow.count) == ("ACCEPT", "ingress", 1)
    assert (flow.src, flow.dst, flow.dst_port) == (OUTSIDE_V4, WEB_V4, 8080)


# A fast sender: `sockets` UDP sockets (so `sockets` 5-tuples), `rate` datagrams a second for
# `seconds`, paced in 1 ms slices; prints how many it sent and how long it took.
_FLOOD = """
import socket, sys, time
dst, rate, seconds, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
for s in socks:
    s.setblocking(False)
total, per_slice, sent = int(rate * seconds), max(1, rate // 1000), 0
start = time.monotonic()
while sent < total:
    for _ in range(per_slice):
        try:
            socks[sent % n].sendto(b"x", (dst, 9))
        except BlockingIOError:
            pass
        sent += 1
    ahead = start + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print(sent, time.monotonic() - start)
"""


def test_a_flood_stays_within_the_rate_limit_and_the_bounds_and_other_drops_still_arrive(
    kernel_runner: SubprocessRunner,
) -> None:
    prefix = new_prefix()
    settings = LogSettings()  # Neutron's defaults: 100 packets/s, burst 25
    table = FlowTable(max_open=200, max_per_port=50)
    sent = Capture()
    agent = None
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, SHARED_BRIDGE)
        lab.apply_fresh(replace(logged(state(), web="DROP", db="DROP"), log_settings=settings))
        lab.settle()
        agent = PacketLog("host1", kernel_runner, lab.host_ns, lambda: lab.state, sent, table=table)
        agent.tick()
        agent.start()
        receiver = agent.receiver
        assert receiver is not None
        outside = lab.topology.ns("outside")
        # 307 sockets, prime: the kernel logs about every 200th packet, and with 300 sockets
        # (a multiple of 100) those came from 3 sockets only on an idle machine, too few flows
        # to reach the port's bound.
        flood = kernel_runner.spawn(
            [sys.executable, "-c", _FLOOD, WEB_V4, "20000", "2", "307"], netns=outside
        )
        most_open = 0
        time.sleep(0.5)
        lab.ping("outside", DB_PORT.id)  # the other port's drop, in the middle of the flood
        while flood.poll() is None:
            most_open = max(most_open, len(table))
            time.sleep(0.01)
        count, seconds = flood.stop().stdout.split()
        assert int(count) == 40_000
        other = sent.wait_for(lambda f: f.port_id == DB_PORT.id, ARRIVES_WITHIN_S)
        time.sleep(2 * agent.interval_s)
        flooded = sent.flows(lambda f: f.port_id == WEB_PORT.id)
        logged_packets = table.packets
        shed = sum(batch.shed for batch in sent.batches)
    finally:
        if agent is not None:
            agent.stopping.set()
            agent.join(timeout=5)
            agent.close()
        remove_namespaces(prefix, kernel_runner)
    assert other, "the other port's drop did not arrive during the flood"
    # The kernel's limit: the burst, then the rate (one second of slack for the edges).
    bound = settings.burst + settings.rate * (float(seconds) + 1)
    web_packets = packets_of(flooded) + shed
    assert 100 <= web_packets <= bound, (web_packets, bound, seconds)
    assert logged_packets <= bound + 10
    # The agent's bound: one port kept at most its share of flows, the rest it shed and counted.
    assert most_open <= table.max_open and len({f.key() for f in flooded}) <= table.max_per_port
    assert shed > 0


def test_a_state_without_logging_removes_the_nflog_rules_and_ends_the_receiver(
    logged_lab: LoggedLab,
) -> None:
    lab, agent = logged_lab.lab, logged_lab.agent
    receiver = agent.receiver
    assert receiver is not None
    save = lab.runner.run(["iptables-save"], netns=lab.host_ns).stdout
    assert "NFLOG" in save
    lab.apply_fresh(logged(state(), web=None, db=None))
    for tool in ("iptables-save", "ip6tables-save"):
        assert "NFLOG" not in lab.runner.run([tool], netns=lab.host_ns).stdout
    deadline = time.monotonic() + 5
    while agent.receiver is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.receiver is None and not receiver.alive


def blocked_connect_arrives(logged_lab: LoggedLab, sent: Capture, port: int) -> bool:
    logged_lab.lab.tcp("outside", WEB_PORT.id, port)
    return bool(sent.wait_for(lambda f: f.dst_port == port, ARRIVES_WITHIN_S))


def test_a_ulogd_that_ended_is_started_again_and_drops_arrive_again(
    logged_lab: LoggedLab,
) -> None:
    agent = logged_lab.agent
    first = agent.receiver
    assert first is not None and first._process is not None
    os.kill(first._process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while agent.receiver in (first, None) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.receiver is not first and agent.receiver is not None
    assert blocked_connect_arrives(logged_lab, logged_lab.sent, 10)


def test_a_ulogd_an_earlier_agent_left_bound_is_ended_by_the_next_agent(
    logged_lab: LoggedLab,
) -> None:
    earlier = logged_lab.agent
    earlier.close = lambda: None  # type: ignore[method-assign]  # a crash: ulogd is left
    earlier.stopping.set()
    earlier.join(timeout=5)
    left = earlier.receiver
    assert left is not None and left.alive
    sent = Capture()
    later = PacketLog(
        "host1", logged_lab.lab.runner, logged_lab.lab.host_ns, lambda: logged_lab.lab.state, sent
    )
    try:
        later.tick()
        assert later.receiver is not None and later.receiver.alive
        assert not left.alive
        later.start()
        assert blocked_connect_arrives(logged_lab, sent, 11)
    finally:
        later.stopping.set()
        later.join(timeout=5)
        later.close()


def test_new_nflog_groups_in_the_state_move_the_receiver_to_them(logged_lab: LoggedLab) -> None:
    lab, agent = logged_lab.lab, logged_lab.agent
    moved = LogSettings(nflog_group_v4=20, nflog_group_v6=21)
    lab.apply_fresh(replace(logged(state(), web="ALL", db="DROP"), log_settings=moved))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        receiver = agent.receiver
        if receiver is not None and receiver.groups == (20, 21):
            break
        time.sleep(0.05)
    assert agent.receiver is not None and agent.receiver.groups == (20, 21)
    assert blocked_connect_arrives(logged_lab, logged_lab.sent, 12)
