"""`python -m bench.agent [--ports 1000]`: the agent's kernel figures in a scratch namespace.

Prints JSON: a full apply of an N-port host by the agent against plain `ipset restore` +
`iptables-restore` + `ip6tables-restore` of the same text into a fresh namespace; one group's
rules changing where 100 ports use it; a remote group's membership changing (ipset only).
Propagation through the control plane is `python -m bench.propagation` (needs Django and a lab).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import sys
import time
from typing import Any

from bench.scenarios import generated_scenario
from sgweb.firewall.model import INGRESS, IPV4, HostState, SecurityGroup, SecurityGroupRule
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.scenario import load_scenario
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from worker.agent import Agent

BENCH_GROUP = "b3c4d5e6-0000-4000-8000-0000000000be"


class _Store:
    def __init__(self) -> None:
        self.desired: Any = None

    def publish(self, revision: int, state: HostState) -> None:
        from sgweb.firewall import codec
        from sgweb.wire import sync as protocol

        text = codec.dumps(state)
        self.desired = protocol.parse_desired(
            protocol.desired_document(revision, codec.digest(text), text, time.time())
        )

    def desired_revision(self) -> int | None:
        return self.desired.revision if self.desired else None

    def fetch(self) -> Any:
        return self.desired

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None: ...

    def set_applied(self, report: dict[str, Any]) -> None: ...

    def clear_heartbeat(self) -> None: ...


class _Quiet:
    def apply(self, report: dict[str, Any]) -> None: ...

    def drift(self, report: dict[str, Any]) -> None: ...

    def request_state(self, reason: str) -> None: ...


def _namespace() -> str:
    runner = default_runner()
    name = f"sgwa-bench-{secrets.token_hex(3)}"
    runner.run(["ip", "netns", "add", name])
    return name


def _drop(name: str) -> None:
    runner = default_runner()
    runner.release_netns(name)
    runner.run(["ip", "netns", "del", name], check=False)


def _with_bench_group(state: HostState, extra_rules: int = 0) -> HostState:
    """A group used by the first 100 ports, with 5 (+ extra) ingress rules."""
    rules = tuple(
        SecurityGroupRule(f"bench-{i}", INGRESS, IPV4, "tcp", 20000 + i, 20000 + i)
        for i in range(5 + extra_rules)
    )
    group = SecurityGroup(BENCH_GROUP, "bench", True, rules)
    ports = tuple(
        dataclasses.replace(port, security_groups=(*port.security_groups, BENCH_GROUP))
        if index < 100
        else port
        for index, port in enumerate(state.ports)
    )
    return dataclasses.replace(state, ports=ports, security_groups=(*state.security_groups, group))


def _with_new_member(state: HostState) -> HostState:
    referenced = {
        rule.remote_group_id
        for g in state.security_groups
        for rule in g.rules
        if rule.remote_group_id
    }
    target = sorted(referenced)[0]
    members = tuple(
        (gid, (*addresses, "203.0.113.250") if gid == target else addresses)
        for gid, addresses in state.remote_group_members
    )
    return dataclasses.replace(state, remote_group_members=members)


def plain_restore(state: HostState, *, noflush: bool = False) -> float:
    from sgweb.firewall.compiler import compile_host

    compiled = compile_host(state)
    texts = [("ipset", render_ipsets(compiled))]
    texts += [("iptables-restore", render_iptables(compiled, 4))]
    texts += [("ip6tables-restore", render_iptables(compiled, 6))]
    netns = _namespace()
    try:
        started = time.perf_counter()
        for command, text in texts:
            argv = ["ipset", "restore"] if command == "ipset" else [command]
            if noflush and command != "ipset":
                argv.append("--noflush")
            default_runner().run(argv, input=text, netns=netns, timeout=300)
        return time.perf_counter() - started
    finally:
        _drop(netns)


def agent_run(state: HostState) -> dict[str, Any]:
    netns = _namespace()
    try:
        store = _Store()
        agent = Agent("bench", store, HostFirewall(default_runner(), netns), _Quiet())
        store.publish(1, state)
        full = agent.sync(1).report
        store.publish(2, _with_bench_group(state, extra_rules=0))
        agent.sync(2)
        store.publish(3, _with_bench_group(state, extra_rules=1))
        group = agent.sync(3).report
        store.publish(4, _with_new_member(_with_bench_group(state, extra_rules=1)))
        member = agent.sync(4).report
        return {"full": full, "group": group, "member": member}
    finally:
        _drop(netns)


def _apply_ms(report: dict[str, Any]) -> float:
    return round(sum(report.get("steps", {}).values()), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.agent")
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", help="a scenario JSON (default: generated)")
    args = parser.parse_args(argv)
    path = args.scenario
    if path is None:
        path = generated_scenario(args.ports)
    state = load_scenario(path)
    plain = [plain_restore(state) for _ in range(args.runs)]
    plain_noflush = [plain_restore(state, noflush=True) for _ in range(args.runs)]
    runs = [agent_run(state) for _ in range(args.runs)]
    full_apply = [_apply_ms(r["full"]) / 1000 for r in runs]
    full_kernel = [r["full"]["kernel_ms"] / 1000 for r in runs]
    result = {
        "ports": len(state.ports),
        "rules": runs[0]["full"]["rules"],
        "plain_restore_s": round(statistics.median(plain), 3),
        "plain_restore_noflush_s": round(statistics.median(plain_noflush), 3),
        "agent_full_apply_s": round(statistics.median(full_apply), 3),
        "agent_full_apply_ratio_vs_noflush": round(
            statistics.median(full_apply) / statistics.median(plain_noflush), 3
        ),
        "agent_full_apply_ratio": round(
            statistics.median(full_apply) / statistics.median(plain), 3
        ),
        "agent_full_with_checks_s": round(statistics.median(full_kernel), 3),
        "group_change_100_ports_kernel_s": round(
            statistics.median(r["group"]["kernel_ms"] for r in runs) / 1000, 4
        ),
        "group_change_chains": runs[0]["group"]["changed_chains"],
        "membership_change_kernel_s": round(
            statistics.median(r["member"]["kernel_ms"] for r in runs) / 1000, 4
        ),
        "membership_change_iptables_restored": runs[0]["member"]["iptables_restored"],
        "membership_change_steps_ms": runs[0]["member"]["steps"],
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
