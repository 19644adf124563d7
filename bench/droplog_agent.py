"""`python -m bench.droplog_agent [--rate 1000] [--seconds 10]`: the drop log's cost on the agent.

Issue 13's target: agent CPU at 1,000 logged drops/s at most 10% of a core. As root, in
namespaces of its own (prefix ``sgwb-dla-``, removed afterwards): one lab host (tests.kernel's
harness), its web port logged (event DROP, the rate limit raised above --rate so every drop is
logged), and a sender in the outside namespace that sends --rate UDP datagrams a second to a
blocked port from --flows source ports, for --seconds. The agent's drop-log thread runs in this
process with the real ulogd2; its send function serialises each batch to JSON as Celery would
(no broker: the broker's cost is the control plane's to measure).

Printed (JSON): the rate the sender reached, log packets the agent received, flows and batches
sent, shed; CPU as % of one core over the window for this process (the reader and the sender
thread; the main thread sleeps), for ulogd, and both; the latency from a drop's log timestamp
to the batch that first carries its flow (p50/p95 over single drops 100 ms apart); and the pure
cost per packet of decoding a ulogd JSON line and adding it to the flow table (µs, no kernel),
and the table's memory with all its open-flow places taken (the agent's bound).
Run it with the load average printed beside it: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

from sgweb.firewall.model import LogSettings
from sgweb.kernel.nflog import LogPacket, decode_line
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import SHARED_BRIDGE, remove_namespaces
from tests.kernel.harness import build_lab
from tests.kernel.test_firewall_e2e import PORTS, WEB_PORT, state
from worker.packetlog import FlowTable, PacketLog

PREFIX = f"sgwb-dla-{os.getpid()}-"

_SENDER = """
import socket, sys, time
dst, rate, seconds, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
total, sent, start = int(rate * seconds), 0, time.monotonic()
while sent < total:
    socks[sent % n].sendto(b"x", (dst, 9))
    sent += 1
    ahead = start + sent / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print(sent, time.monotonic() - start)
"""

_SINGLES = """
import socket, sys, time
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", (sys.argv[1], 9))
    s.close()
    time.sleep(0.1)
"""

SAMPLE = json.dumps({
    "timestamp": "2026-12-07T02:24:31.888973", "dvc": "Netfilter", "raw.pktlen": 29,
    "raw.pktcount": 1, "oob.prefix": f"DROP ingress {WEB_PORT.id}", "oob.time.sec": 1796610271,
    "oob.time.usec": 888973, "oob.mark": 0, "oob.ifindex_in": 5, "oob.ifindex_out": 7,
    "oob.hook": 2, "raw.mac_len": 14, "oob.family": 2, "oob.protocol": 2048, "raw.label": 0,
    "raw.type": 1, "raw.mac.addrlen": 6, "ip.protocol": 17, "ip.tos": 0, "ip.ttl": 63,
    "ip.totlen": 29, "ip.ihl": 5, "ip.csum": 1, "ip.id": 1, "ip.fragoff": 16384,
    "src_port": 40001, "dest_port": 9, "udp.len": 9, "udp.csum": 1,
    "src_ip": "198.51.100.7", "dest_ip": "192.0.2.11",
})  # fmt: skip


def pure_cost_us(packets: int = 50_000, flows: int = 50) -> float:
    """µs per packet: decode a ulogd line, add it to the table (drains included)."""
    lines = [SAMPLE.replace("40001", str(40000 + i % flows)) for i in range(packets)]
    table = FlowTable()
    started = time.perf_counter()
    for i, line in enumerate(lines):
        packet = decode_line(line)
        assert packet is not None
        table.add(packet)
        if i % 500 == 0:
            table.drain()
    return (time.perf_counter() - started) / packets * 1e6


def table_bytes_at_bound() -> int:
    """The flow table's memory with every open-flow place taken (distinct 5-tuples, several
    ports), by tracemalloc: the agent's bound for the drop log's state."""
    table = FlowTable()
    ports = [f"{i:08d}-aaaa-4aaa-8aaa-{i:012d}" for i in range(8)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(table.max_open + 1000):  # packets made here: the table keeps one a flow
        table.add(
            LogPacket("DROP", "ingress", ports[i % 8], 4, 6, f"198.51.100.{i % 250}",
                      "192.0.2.11", 1024 + i, 5432, time=100.0 + i / 1e6)
        )  # fmt: skip
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert len(table) == table.max_open
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(rate: int, seconds: float, flows: int, latency_probes: int = 40) -> dict[str, Any]:
    runner = SubprocessRunner()
    batches: list[int] = []

    first_reports: dict[tuple[Any, ...], float] = {}  # flow -> logged -> first sent, s

    def send(document: dict[str, Any]) -> None:
        json.dumps(document)  # what Celery's JSON serializer does with it
        batches.append(len(document["flows"]))
        now = time.time()
        for flow in document["flows"]:
            key = (flow["src_port"], flow["dst_port"], flow["first_seen"])
            first_reports.setdefault(key, now - flow["first_seen"])

    agent = None
    try:
        lab = build_lab(runner, PREFIX, PORTS, SHARED_BRIDGE)
        ports = tuple(replace(p, log_events="DROP") if p is WEB_PORT else p for p in PORTS)
        settings = LogSettings(rate=rate * 4, burst=rate)
        lab.apply_fresh(replace(state(), ports=ports, log_settings=settings))
        lab.settle()
        table = FlowTable()
        agent = PacketLog("bench", runner, lab.host_ns, lambda: lab.state, send, table=table)
        agent.tick()
        assert agent.receiver is not None and agent.receiver._process is not None
        ulogd = psutil.Process(agent.receiver._process.pid)
        agent.start()
        sender = runner.spawn(
            [sys.executable, "-c", _SENDER, WEB_PORT.fixed_ips[0], str(rate), str(seconds),
             str(flows)],
            netns=lab.topology.ns("outside"),
        )  # fmt: skip
        time.sleep(0.5)  # the sender's start-up is not the agent's cost
        cpu0, ulogd0, wall0 = _cpu_self(), sum(ulogd.cpu_times()[:2]), time.monotonic()
        received0 = table.packets
        time.sleep(max(1.0, seconds - 1.0))
        cpu1, ulogd1, wall1 = _cpu_self(), sum(ulogd.cpu_times()[:2]), time.monotonic()
        received1 = table.packets
        sender.popen.wait(timeout=seconds + 10)
        sent, took = sender.stop().stdout.split()
        time.sleep(2 * agent.interval_s)
        # Latency: single drops, one new 5-tuple each, 100 ms apart; from the kernel's log
        # timestamp to the batch that first carries the flow.
        first_reports.clear()
        runner.run(
            [sys.executable, "-c", _SINGLES, WEB_PORT.fixed_ips[0], str(latency_probes)],
            netns=lab.topology.ns("outside"),
        )
        time.sleep(2 * agent.interval_s + 0.2)
        latencies = sorted(first_reports.values())
        window = wall1 - wall0
        agent_pct = (cpu1 - cpu0) / window * 100
        ulogd_pct = (ulogd1 - ulogd0) / window * 100
        return {
            "rate_asked": rate,
            "rate_sent": round(int(sent) / float(took)),
            "logged_per_s": round((received1 - received0) / window),
            "received": table.packets,
            "flows_sent": sum(batches),
            "batches": len(batches),
            "shed": table.shed,
            "window_s": round(window, 2),
            "agent_cpu_pct": round(agent_pct, 2),
            "ulogd_cpu_pct": round(ulogd_pct, 2),
            "total_cpu_pct": round(agent_pct + ulogd_pct, 2),
            "latency_probes": len(latencies),
            "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000) if latencies else None,
            "latency_ms_p95": (
                round(latencies[int(len(latencies) * 0.95)] * 1000) if latencies else None
            ),
        }
    finally:
        if agent is not None:
            agent.stopping.set()
            agent.join(timeout=5)
            agent.close()
        remove_namespaces(PREFIX, runner)
        runner.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.droplog_agent", description=__doc__)
    parser.add_argument("--rate", type=int, default=1000, help="dropped packets per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flows", type=int, default=50, help="distinct 5-tuples")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench.droplog_agent needs root (network namespaces)", file=sys.stderr)
        return 2
    result = measure(args.rate, args.seconds, args.flows)
    result["pure_us_per_packet"] = round(pure_cost_us(), 2)
    result["open_flows_bound"] = FlowTable().max_open
    result["table_mib_at_bound"] = round(table_bytes_at_bound() / 2**20, 2)
    result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
