"""`python -m bench.detach [--rules 1000] [--connections 200] [--old]`: the agent's stall while a
large group is detached from two ports, and a restart after it (root: a scratch namespace).

Two ports use a group of N ingress rules (one TCP port each) and a default egress group; the
kernel's conntrack table holds `--connections` entries per port to ports of that group (put in
with `conntrack -I`, in the ports' zone) and as many the group does not cover. Then the group is
detached from both ports. Printed (JSON):

* `stall_s`: how long the agent's sync held its lock (every other sync, the live counters and
  the drift checks wait that long);
* `cut_done_s`: from the start of that sync until the queued cut finished, `cut_deleted` entries;
* `restart_s`: a new agent's start-up sync on the same kernel afterwards;
* `restart_after_kill_s`: the same, when the agent had died before its cut ran (the older state
  is still remembered, so the restart plans and queues the cut itself), and its cut time;
* `old_way_s` (with `--old`): the previous way, one `conntrack -D` per cut, address and direction.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from typing import Any

from sgweb.firewall import codec
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import EGRESS, INGRESS, IPV4, HostState, Port, SecurityGroup
from sgweb.firewall.model import SecurityGroupRule as Rule
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from sgweb.wire import sync as protocol
from worker import conntrack
from worker.agent import Agent

BIG = "b3c4d5e6-0000-4000-8000-00000000d001"
BASE = "b3c4d5e6-0000-4000-8000-00000000d002"
ADDRESSES = ("192.0.2.10", "192.0.2.11")
PEER = "198.51.100.7"
ZONE = 5
FIRST_PORT = 10000


class _Store:
    def __init__(self) -> None:
        self.desired: protocol.Desired | None = None
        self.state: dict[str, Any] | None = None

    def publish(self, revision: int, state: HostState) -> None:
        text = codec.dumps(state)
        document = protocol.desired_document(revision, codec.digest(text), text, time.time())
        self.desired = protocol.parse_desired(document)

    def desired_revision(self) -> int | None:
        return self.desired.revision if self.desired else None

    def fetch(self) -> protocol.Desired | None:
        return self.desired

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None: ...

    def set_applied(self, report: dict[str, Any]) -> None: ...

    def clear_heartbeat(self) -> None: ...

    def set_applied_state(self, state: dict[str, Any]) -> None:
        self.state = state

    def applied_state(self) -> dict[str, Any] | None:
        return self.state


class _Quiet:
    def apply(self, report: dict[str, Any]) -> None: ...

    def drift(self, report: dict[str, Any]) -> None: ...

    def request_state(self, reason: str) -> None: ...


def host_state(rules: int, *, attached: bool) -> HostState:
    big = SecurityGroup(BIG, "big", True, tuple(
        Rule(f"big-{i}", INGRESS, IPV4, "tcp", FIRST_PORT + i, FIRST_PORT + i)
        for i in range(rules)
    ))  # fmt: skip
    base = SecurityGroup(BASE, "base", True, (Rule("base-egress", EGRESS, IPV4),))
    ports = tuple(
        Port(
            id=f"d0d0d0d{index}-0000-4000-8000-0000000000{index:02d}",
            mac_address=f"fa:16:3e:00:d0:{index:02x}",
            fixed_ips=(address,),
            security_groups=(BASE, BIG) if attached else (BASE,),
            host="bench",
            network_id="net-bench",
        )
        for index, address in enumerate(ADDRESSES)
    )
    return HostState(
        ports=ports,
        security_groups=(base, big) if attached else (base,),
        host="bench",
        conntrack_zones=(("net-bench", ZONE),),
    )


def insert_connections(netns: str, per_port: int, rules: int) -> None:
    """`per_port` entries into ports of the group and as many to a port it does not cover."""
    script = []
    for address in ADDRESSES:
        for i in range(per_port):
            covered = FIRST_PORT + (i % rules)
            for dport in (covered, 80):
                script.append(
                    f"conntrack -I -s {PEER} -d {address} -p tcp --sport {30000 + i} "
                    f"--dport {dport} -w {ZONE} -t 600 --state ESTABLISHED -u ASSURED"
                )
    default_runner().run(["sh", "-c", " 2>/dev/null; ".join(script) + " 2>/dev/null; true"],
                         netns=netns, timeout=600)  # fmt: skip


def count_connections(netns: str) -> int:
    listed = default_runner().run(["conntrack", "-L", "-w", str(ZONE)], netns=netns, check=False)
    return sum(1 for line in listed.stdout.splitlines() if line.startswith("tcp"))


def _agent(store: _Store, netns: str) -> Agent:
    return Agent("bench", store, HostFirewall(default_runner(), netns), _Quiet())


def run(rules: int, connections: int, old: bool) -> dict[str, Any]:
    netns = f"sgwa-bench-{secrets.token_hex(3)}"
    runner = default_runner()
    runner.run(["ip", "netns", "add", netns])
    try:
        attached, detached = host_state(rules, attached=True), host_state(rules, attached=False)
        store = _Store()
        agent = _agent(store, netns)
        store.publish(1, attached)
        agent.sync(1)
        agent.cuts.wait_idle()
        insert_connections(netns, connections, rules)
        before = count_connections(netns)
        store.publish(2, detached)
        started = time.perf_counter()
        report = agent.sync(2).report
        stall = time.perf_counter() - started
        agent.cuts.wait_idle(600)
        cut_done = time.perf_counter() - started
        status = agent.cuts.status()
        result: dict[str, Any] = {
            "rules": rules,
            "ports": len(ADDRESSES),
            "connections_before": before,
            "cuts_planned": len(report.get("conntrack_cuts", [])),
            "stall_s": round(stall, 3),
            "apply_kernel_s": round(report["kernel_ms"] / 1000, 3),
            "cut_done_s": round(cut_done, 3),
            "cut_deleted": status.get("deleted"),
            "connections_after": count_connections(netns),
        }
        started = time.perf_counter()
        _agent(store, netns).full_sync("agent start")
        result["restart_s"] = round(time.perf_counter() - started, 3)
        result.update(_restart_after_kill(netns, store, attached, rules, connections))
        if old:
            result["old_way_s"] = _old_way(netns, attached, detached, rules, connections)
        return result
    finally:
        runner.release_netns(netns)
        runner.run(["ip", "netns", "del", netns], check=False)


def _restart_after_kill(
    netns: str, store: _Store, attached: HostState, rules: int, connections: int
) -> dict[str, Any]:
    """The agent died between its apply and its cut: revision 1's state is still remembered."""
    store.set_applied_state(codec.to_dict(attached))
    insert_connections(netns, connections, rules)
    restarted = _agent(store, netns)
    started = time.perf_counter()
    restarted.full_sync("agent start")
    sync_s = time.perf_counter() - started
    restarted.cuts.wait_idle(600)
    return {
        "restart_after_kill_s": round(sync_s, 3),
        "restart_after_kill_cut_done_s": round(time.perf_counter() - started, 3),
        "restart_after_kill_deleted": restarted.cuts.status().get("deleted"),
    }


def _old_way(
    netns: str, attached: HostState, detached: HostState, rules: int, connections: int
) -> float:
    insert_connections(netns, connections, rules)
    firewall = HostFirewall(default_runner(), netns)
    cuts = conntrack.plan_cuts(attached, detached, compile_host(detached))
    started = time.perf_counter()
    for cut in cuts:
        firewall.flush_conntrack(cut.addresses, zone=cut.zone, protocol=cut.protocol, port=cut.port)
    return round(time.perf_counter() - started, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detach")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=200, help="per port")
    parser.add_argument("--old", action="store_true", help="also time one conntrack -D per cut")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rules, args.connections, args.old), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
