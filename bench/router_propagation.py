"""Router propagation benchmark (issue 16): one rule inserted into a policy used by R routers on
N network nodes; time until every network node's kernel has it.

Real everything but the database: per network node a host namespace with two bridges and a real
agent process (`python -m worker`, real Celery on the real Redis) that plumbs its routers itself;
the control side is `sgweb.hostsync.routers_publish.publish_network_node` (what fwaas's dispatch
calls after commit), timed from just before the first node is published.

Figures (p50 / p95 / max over `--inserts`):
- `in_kernel_s`: until the last node's agent had every router's new rules in force (the agent's
  `kernel_applied_at`, same machine clock);
- `reported_s`: until the last node's report was in Redis;
- `agent_apply_ms`: the agents' own duration per apply (decode, compile, per-router delta and
  apply; the conntrack cuts follow in a thread of their own);
- `agent_cpu_ms`: CPU each node's agent used per change, with its restores (what the change
  costs a node whatever else runs; the wall times above include waiting for a core);
  `agent_own_cpu_ms` the agent process alone (the rest is its `iptables-restore` children).
  Both at the 10 ms tick of the kernel's accounting.

    python -m bench.router_propagation --nodes 2 --routers 50 --rules 100 --inserts 10   (root)

Namespaces are `sgwb-<pid>-rp-...`, Redis keys a private prefix; both are removed afterwards,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import redis

from bench.fwaas import make_rule
from sgweb.firewall.fwaas.model import (
    DENY,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    NetworkNodeState,
    Router,
    RouterInterface,
    RouterState,
)
from sgweb.hostsync.channel import SyncChannel
from sgweb.hostsync.routers_publish import publish_network_node
from sgweb.kernel.runner import SpawnedProcess, SubprocessRunner
from sgweb.kernel.topology import remove_namespaces
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("SGWEB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
NETWORKS = ("bench-net-a", "bench-net-b")  # bridges brq + the first 11 characters


def node_state(host: str, node: int, routers: int, policy: FirewallPolicy) -> NetworkNodeState:
    states = []
    for r in range(routers):
        interfaces = tuple(
            RouterInterface(
                port_id=f"{node:02x}{r:03x}{side}00-bench-port",
                network_id=network,
                subnet_id=f"subnet-{node}-{r}-{side}",
                cidr=f"100.{64 + node * 2 + side}.{r}.0/24",
                ip_address=f"100.{64 + node * 2 + side}.{r}.1",
                mac_address=f"fa:16:3e:{node:02x}:{r:02x}:{side:02x}",
                network_name=network,
            )
            for side, network in enumerate(NETWORKS)
        )
        group = FirewallGroup(
            id=f"fg-{node}-{r}",
            name=f"fw-{r}",
            ingress_policy=policy,
            egress_policy=policy,
            ports=tuple(sorted({i.port_id for i in interfaces})),
        )
        router = Router(id=f"bench-{node}-{r}", name=f"r{r}", interfaces=interfaces)
        states.append(RouterState(router=router, firewall_groups=(group,)))
    return NetworkNodeState(host=host, routers=tuple(states))


def with_rule(policy: FirewallPolicy, run: int) -> FirewallPolicy:
    middle = len(policy.rules) // 2
    new = FirewallRule(
        id=f"inserted-{run}", protocol="tcp", destination_port=str(40000 + run), action=DENY
    )
    return replace(policy, rules=(*policy.rules[:middle], new, *policy.rules[middle:]))


def start_agent(runner: SubprocessRunner, host: str, netns: str, key_prefix: str) -> SpawnedProcess:
    env = {
        "SGWEB_HOST": host,
        "SGWEB_NETNS": netns,
        "SGWEB_ROUTER_NETNS_PREFIX": f"{host}-",  # per node: see worker.routers strays
        "SGWEB_BROKER_URL": REDIS_URL,
        "SGWEB_KEY_PREFIX": key_prefix,
        "SGWEB_CONTROL_QUEUE": f"control-{key_prefix}",
        "SGWEB_POLL_INTERVAL_S": "600",  # revisions arrive by the nudge, as in production
        "SGWEB_DRIFT_INTERVAL_S": "0",
        "SGWEB_ACCOUNTING_INTERVAL_S": "0",
        "SGWEB_OWNER_PID": str(os.getpid()),
        "PYTHONPATH": str(ROOT),
    }
    argv = ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m", "worker"]
    return runner.spawn(argv)


def applied(client: redis.Redis[bytes], host: str, key_prefix: str) -> dict:  # type: ignore[type-arg]
    raw = client.get(wire.router_keys(host, key_prefix).applied)
    return json.loads(raw) if raw else {}


def wait_applied(
    client: redis.Redis[bytes], hosts: list[str], key_prefix: str, revisions: dict[str, int],
    timeout: float,
) -> dict[str, dict]:  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        reports = {host: applied(client, host, key_prefix) for host in hosts}
        if all(reports[h].get("revision", 0) >= revisions[h] for h in hosts):
            failed = [r for r in reports.values() if not r.get("ok")]
            if failed:
                raise SystemExit(f"apply failed: {failed[0].get('error')}")
            return reports
        if time.monotonic() > deadline:
            raise SystemExit(f"not applied after {timeout} s: {reports}")
        time.sleep(0.002)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 4),
        "p95": round(p95, 4),
        "max": round(ordered[-1], 4),
    }


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU an agent used so far: (its own, its waited-for children's: the restores). What one
    change costs a network node whatever else the machine is doing, unlike the wall times,
    which on a loaded 2-core machine are mostly waiting for a core."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    utime, stime, child_utime, child_stime = (int(value) for value in fields[11:15])
    tick = os.sysconf("SC_CLK_TCK")
    return (utime + stime) / tick, (child_utime + child_stime) / tick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/router_propagation.py")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--routers", type=int, default=50, help="in all, split over the nodes")
    parser.add_argument("--rules", type=int, default=100, help="in the shared policy")
    parser.add_argument("--inserts", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.5, help="seconds between inserts")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    runner = SubprocessRunner()
    prefix = f"sgwb-{os.getpid()}-rp-"
    key_prefix = f"sgwb-{os.getpid()}-rp"
    channel = SyncChannel(
        REDIS_URL, REDIS_URL, prefix=key_prefix, control_queue=f"control-{key_prefix}"
    )
    client: redis.Redis[bytes] = redis.Redis.from_url(REDIS_URL)
    hosts = [f"{prefix}node{n}" for n in range(args.nodes)]
    share, extra = divmod(args.routers, args.nodes)
    per_node = [share + (n < extra) for n in range(args.nodes)]
    agents: list[SpawnedProcess] = []
    policy = FirewallPolicy(
        id="bench-shared", name="shared", rules=tuple(make_rule(i) for i in range(args.rules))
    )
    figures: dict[str, list[float]] = {
        "in_kernel_s": [],
        "reported_s": [],
        "agent_apply_ms": [],
        "agent_cpu_ms": [],
        "agent_own_cpu_ms": [],
    }
    try:
        for host in hosts:
            runner.run(["ip", "netns", "add", host])
            for network in NETWORKS:
                bridge = "brq" + network[:11]
                runner.run(["ip", "link", "add", bridge, "type", "bridge"], netns=host)
                runner.run(["ip", "link", "set", bridge, "up"], netns=host)
            agents.append(start_agent(runner, host, host, key_prefix))
        for host in hosts:
            keys = protocol.host_keys(host, key_prefix)
            deadline = time.monotonic() + 60
            while not client.exists(keys.heartbeat):
                if time.monotonic() > deadline:
                    raise SystemExit(f"no heartbeat from the agent of {host}")
                time.sleep(0.05)

        def publish_all(current: FirewallPolicy) -> dict[str, int]:
            return {
                host: publish_network_node(
                    host, node_state(host, n, per_node[n], current), "bench", via=channel
                ).revision
                for n, host in enumerate(hosts)
            }

        started = time.monotonic()
        wait_applied(client, hosts, key_prefix, publish_all(policy), 300)
        first_s = time.monotonic() - started
        for run in range(args.inserts):
            policy = with_rule(policy, run)
            cpu_before = [cpu_seconds(agent.popen.pid) for agent in agents]
            t0 = time.time()
            revisions = publish_all(policy)
            reports = wait_applied(client, hosts, key_prefix, revisions, 60)
            for agent, (own, children) in zip(agents, cpu_before, strict=True):
                own_now, children_now = cpu_seconds(agent.popen.pid)
                figures["agent_cpu_ms"].append((own_now + children_now - own - children) * 1000)
                figures["agent_own_cpu_ms"].append((own_now - own) * 1000)
            figures["reported_s"].append(time.time() - t0)
            figures["in_kernel_s"].append(
                max(float(r["kernel_applied_at"]) for r in reports.values()) - t0
            )
            figures["agent_apply_ms"] += [float(r["duration_ms"]) for r in reports.values()]
            time.sleep(args.pause)  # a change on a quiet node: the previous cuts are done
        with open("/proc/loadavg") as handle:
            load = handle.read().split()[:3]
        print(
            json.dumps(
                {
                    "nodes": args.nodes,
                    "routers": args.routers,
                    "rules": args.rules,
                    "inserts": args.inserts,
                    "first_apply_s": round(first_s, 3),
                    **{name: percentiles(values) for name, values in figures.items()},
                    "loadavg": load,
                },
                indent=1,
            )
        )
    finally:
        for process in agents:
            process.stop(timeout=3)
        remove_namespaces(prefix, runner)
        for pattern in (f"{key_prefix}:*", f"*{key_prefix}*"):
            for key in client.scan_iter(pattern):
                client.delete(key)
        for host in hosts:
            client.delete(protocol.host_queue(host))
        client.close()
        channel.close()
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
