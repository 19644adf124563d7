"""FWaaS benchmark (issue 16): a firewall group of N rules on a router with K interfaces.

Figures (medians of `--runs`, the spread as [min, max]):
- `compile_s`: compile_router of the whole router state (validation included);
- `render_s`: both families' full restore text;
- `full_apply_s`: RouterFirewall.apply into a fresh namespace (save, restore per family);
- `insert_apply_s`: one rule inserted in the middle of the policy: compile, delta, apply;
- `hits_s`: reading every firewall rule's counter (one iptables-save -c per family);
- `shared`: one policy (`--shared-rules`) used by the groups of `--shared-routers` routers on
  one network node, each router its own namespace: one rule inserted, then per router compile,
  delta and apply (`per_router_s` p50/p95) and the node's total (`node_total_s`), which is the
  kernel part of "time until every network node's kernel has it" (the rest is the dispatch);
  `shared.accounting`: the network node's always-on accounting read of those routers' firewall
  chains (`worker.router_accounting`, issue 16), median of `--accounting-reads`: `idle_read`
  (nothing counted since the baseline: each router's FORWARD chain per family, one netlink
  dump each), `full_read` (every chain: the first reading, or every rule hit), each with its
  wall and CPU time (the thread's, the kernel's side of the dumps included); `deltas_ms` the
  subtraction with every rule changed; `save_full_read` the iptables-save fallback (wall: its
  processes' CPU is not the agent's thread's).

The group's ingress and egress policies share the N rules (3/4 IPv4, 1/4 IPv6, a mix of tcp,
udp, icmp, any, ranges and CIDRs from the documentation ranges), as admins reuse one policy.
Namespaces are `sgwb-<pid>-fwaas-...`, removed afterwards, also on failure or Ctrl-C.

    python -m bench.fwaas --rules 1000 --interfaces 10 --runs 5   (root)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace

from sgweb.firewall.fwaas.compiler import CompiledRouter, compile_router, render_full
from sgweb.firewall.fwaas.model import (
    ALLOW,
    DENY,
    REJECT,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    Router,
    RouterInterface,
    RouterState,
)
from sgweb.kernel.router import RouterFirewall
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import remove_namespaces
from worker.accounting_read import Snapshot
from worker.router_accounting import RouterAccountant, RouterChainReader

BENCH_PREFIX = "sgwb-"


def make_rule(index: int) -> FirewallRule:
    action = (ALLOW, DENY, REJECT)[index % 3]
    if index % 4 == 3:
        return FirewallRule(
            id=f"rule-{index:05d}",
            name=f"v6-{index}",
            ip_version=6,
            protocol=("tcp", "icmp")[index % 2],
            source_ip_address=f"2001:db8:{index % 4096:x}::/64",
            destination_port=str(1024 + index % 60000) if index % 2 == 0 else None,
            action=action,
        )
    protocol = ("tcp", "udp", "icmp", None)[index % 4]
    ported = protocol in ("tcp", "udp")
    return FirewallRule(
        id=f"rule-{index:05d}",
        name=f"v4-{index}",
        protocol=protocol,
        source_ip_address=f"100.{64 + index % 64}.{index // 64 % 256}.0/24",
        destination_ip_address="198.51.100.0/24" if index % 5 == 0 else None,
        destination_port=(f"{1000 + index % 5000}:{1010 + index % 5000}" if ported else None),
        source_port="1024:65535" if ported and index % 7 == 0 else None,
        action=action,
    )


def make_state(rules: int, interfaces: int) -> RouterState:
    ports = tuple(
        RouterInterface(
            port_id=f"{n:08x}-bench-port",
            network_id=f"net-{n}",
            subnet_id=f"subnet-{n}",
            cidr=f"100.{64 + n}.0.0/16",
            ip_address=f"100.{64 + n}.0.1",
            mac_address=f"fa:16:3e:00:01:{n:02x}",
            network_name=f"net-{n}",
        )
        for n in range(interfaces)
    )
    policy = FirewallPolicy(
        id="bench-policy", name="bench", rules=tuple(make_rule(i) for i in range(rules))
    )
    group = FirewallGroup(
        id="b0b0b0b0-bench-group",
        name="bench-fw",
        ingress_policy=policy,
        egress_policy=policy,
        ports=tuple(p.port_id for p in ports),
    )
    return RouterState(router=Router(id="bench-router", name="r-bench", interfaces=ports),
                       firewall_groups=(group,))  # fmt: skip


def with_inserted_rule(state: RouterState, run: int) -> RouterState:
    group = state.firewall_groups[0]
    policy = group.ingress_policy
    assert policy is not None
    middle = len(policy.rules) // 2
    new = FirewallRule(id=f"inserted-{run}", protocol="tcp", destination_port=str(40000 + run),
                       action=DENY)  # fmt: skip
    rules = (*policy.rules[:middle], new, *policy.rules[middle:])
    changed = replace(policy, rules=rules)
    return replace(state, firewall_groups=(replace(group, egress_policy=changed),))


def shared_policy_figures(runner: SubprocessRunner, prefix: str, routers: int, rules: int,  # type: ignore[no-untyped-def]
                          reads: int = 5):  # fmt: skip
    base = make_state(rules, 2)
    states = [
        replace(base, router=replace(base.router, id=f"bench-router-{n}", name=f"r{n}"))
        for n in range(routers)
    ]
    compiled = [compile_router(state) for state in states]
    firewalls = []
    for n, first in enumerate(compiled):
        netns = f"{prefix}shared-{n}"
        runner.run(["ip", "netns", "add", netns])
        firewall = RouterFirewall(runner, netns)
        firewall.apply(first).raise_for_error()
        firewalls.append(firewall)
    per_router = []
    started = time.perf_counter()
    for state, first, firewall in zip(states, compiled, firewalls, strict=True):
        router_started = time.perf_counter()
        changed = compile_router(with_inserted_rule(state, 0))
        firewall.apply(changed, first).raise_for_error()
        per_router.append(time.perf_counter() - router_started)
    total = time.perf_counter() - started
    by_id = {state.router.id: compile_router(with_inserted_rule(state, 0)) for state in states}
    netns_of = {state.router.id: f"{prefix}shared-{n}" for n, state in enumerate(states)}
    accounting = accounting_figures(runner, netns_of, by_id, reads)
    per_router.sort()
    return {
        "routers": routers,
        "rules": rules,
        "per_router_s": {"p50": round(statistics.median(per_router), 4),
                         "p95": round(per_router[int(0.95 * (len(per_router) - 1))], 4)},
        "node_total_s": round(total, 4),
        "accounting": accounting,
    }  # fmt: skip


def accounting_figures(
    runner: SubprocessRunner, netns_of: dict[str, str], compiled: dict[str, CompiledRouter],
    reads: int,
) -> dict[str, object]:  # fmt: skip
    """The network node's accounting read of every router (see the module docstring)."""
    accountant = RouterAccountant("bench-node")
    layout = accountant.layout(compiled)
    reader = RouterChainReader(netns_of.__getitem__, runner.run)
    every = set(layout.chains)
    figures: dict[str, list[float]] = {name: [] for name in (
        "full_read_ms", "full_read_cpu_ms", "idle_read_ms", "idle_read_cpu_ms", "deltas_ms",
        "save_full_read_ms")}  # fmt: skip
    baseline: Snapshot = {}
    idle_chains = 0
    for _ in range(reads):
        for name, base, must in (("full_read", None, every), ("idle_read", baseline, set())):
            wall, cpu = time.perf_counter(), time.thread_time()
            read = reader.read(layout, base, must)
            figures[f"{name}_ms"].append((time.perf_counter() - wall) * 1000)
            figures[f"{name}_cpu_ms"].append((time.thread_time() - cpu) * 1000)
            if base is None:
                baseline = read
            else:
                idle_chains = reader.chains_read
        busy = {key: {identity: (packets + 5, size + 500) for identity, (packets, size)
                      in counts.items()} for key, counts in baseline.items()}  # fmt: skip
        accountant.baseline = baseline
        started = time.perf_counter()
        document, _snapshot = accountant.deltas(layout, busy, time.time())
        figures["deltas_ms"].append((time.perf_counter() - started) * 1000)
    saved = RouterChainReader(netns_of.__getitem__, runner.run)
    saved.use_netlink = False
    for _ in range(reads):
        started = time.perf_counter()
        saved.read(layout, None, every)
        figures["save_full_read_ms"].append((time.perf_counter() - started) * 1000)
    rules = sum(len(chain.identities) for chain in layout.chains.values())
    return {
        "chains": len(layout.chains),
        "kernel_rules": rules,
        "idle_chains_read": idle_chains,
        "origins_sent_when_all_hit": len(document.rules),
        **{name: round(statistics.median(values), 2) for name, values in figures.items()},
        "loadavg": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def _timed(function, *args):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def summary(values: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(values), 4),
            "spread": [round(min(values), 4), round(max(values), 4)]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/fwaas.py")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--interfaces", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--shared-routers", type=int, default=50)
    parser.add_argument("--shared-rules", type=int, default=100)
    parser.add_argument("--accounting-reads", type=int, default=5)
    args = parser.parse_args(argv)
    state = make_state(args.rules, args.interfaces)
    figures: dict[str, list[float]] = {k: [] for k in
                                       ("compile_s", "render_s", "full_apply_s",
                                        "insert_apply_s", "hits_s")}  # fmt: skip
    runner = SubprocessRunner()
    prefix = f"{BENCH_PREFIX}{os.getpid()}-fwaas-"
    lines = 0
    try:
        for run in range(args.runs):
            compiled, seconds = _timed(compile_router, state)
            figures["compile_s"].append(seconds)
            texts, seconds = _timed(lambda c: [render_full(f) for f in c.families], compiled)
            figures["render_s"].append(seconds)
            lines = sum(text.count("\n-A ") for text in texts)
            netns = f"{prefix}{run}"
            runner.run(["ip", "netns", "add", netns])
            try:
                firewall = RouterFirewall(runner, netns)
                report, seconds = _timed(firewall.apply, compiled)
                report.raise_for_error()
                figures["full_apply_s"].append(seconds)
                started = time.perf_counter()
                changed = compile_router(with_inserted_rule(state, run))
                firewall.apply(changed, compiled).raise_for_error()
                figures["insert_apply_s"].append(time.perf_counter() - started)
                hits, seconds = _timed(firewall.rule_hits, changed)
                figures["hits_s"].append(seconds)
                assert len(hits) == 2 * args.rules + 1, len(hits)
            finally:
                remove_namespaces(netns, runner)
        shared = (
            shared_policy_figures(
                runner, prefix, args.shared_routers, args.shared_rules, args.accounting_reads
            )
            if args.shared_routers
            else None
        )
    finally:
        remove_namespaces(prefix, runner)
        runner.close()
    result = {
        "rules": args.rules,
        "interfaces": args.interfaces,
        "runs": args.runs,
        "kernel_rule_lines": lines,
        **{name: summary(values) for name, values in figures.items()},
        "shared": shared,
        "loadavg": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
