"""Kernel-side benchmark: what applying a scenario costs in a real (namespaced) kernel.

Figures (medians of `runs`, each full apply in a fresh namespace):
- `full_apply_s`: HostFirewall.apply of the whole state (ipsets, both families, built-in jumps)
  against `plain_restore_s`: plain `ipset restore` + `iptables-restore --noflush` +
  `ip6tables-restore --noflush` of the very same rendered text.
- `group_change`: one group's rules change, the group being the one whose share of ports is
  closest to 10%; the incremental delta applied with --noflush on a loaded host.
- `membership_change`: an address joins every remote group (ipset only, no iptables line).
- `counters`: reading one port chain's counters, and all counters with iptables-save -c.

Namespaces are named `sgwb-<pid>-...` and removed afterwards, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import EGRESS, INGRESS, IPV4, HostState, SecurityGroupRule
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.scenario import load_scenario
from sgweb.kernel.apply import HostFirewall, removal_delta
from sgweb.kernel.runner import CommandRunner, SubprocessRunner
from sgweb.kernel.topology import list_namespaces, remove_namespaces

BENCH_PREFIX = "sgwb-"


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4) if values else 0.0


def _spread(values: list[float]) -> list[float]:
    return [round(min(values), 4), round(max(values), 4)] if values else []


@contextmanager
def _namespace(runner: CommandRunner, prefix: str, label: str) -> Iterator[str]:
    name = f"{prefix}{label}"
    runner.run(["ip", "netns", "add", name])
    try:
        yield name
    finally:
        remove_namespaces(name, runner)


def _group_near_share(state: HostState, share: float) -> tuple[str, int]:
    counts: dict[str, int] = {}
    for port in state.ports:
        if port.port_security_enabled:
            for group_id in port.security_groups:
                counts[group_id] = counts.get(group_id, 0) + 1
    if not counts:
        raise ValueError("no port of the scenario uses a security group")
    target = share * len(state.ports)
    group_id = min(sorted(counts), key=lambda gid: abs(counts[gid] - target))
    return group_id, counts[group_id]


def _with_changed_group(state: HostState, group_id: str, variant: int) -> HostState:
    """The group's rules with one rule added (tcp to a port that varies per variant)."""
    groups = []
    for group in state.security_groups:
        if group.id == group_id:
            extra = SecurityGroupRule(
                id=f"bench-rule-{variant}",
                direction=INGRESS if variant % 2 else EGRESS,
                ethertype=IPV4,
                protocol="tcp",
                port_range_min=10000 + variant,
                port_range_max=10000 + variant,
                remote_ip_prefix="203.0.113.0/24",
            )
            group = replace(group, rules=(*group.rules, extra))
        groups.append(group)
    return replace(state, security_groups=tuple(groups))


def _with_member(state: HostState, address: str) -> HostState:
    members = tuple((gid, (*addrs, address)) for gid, addrs in state.remote_group_members)
    return replace(state, remote_group_members=members)


def _rule_count(compiled: CompiledHost, family: int) -> int:
    return sum(
        len(chain.rules) for table in compiled.family(family).tables for chain in table.chains
    )


def _plain_restore(runner: CommandRunner, netns: str, compiled: CompiledHost) -> dict[str, float]:
    texts = [
        ("ipset", ["ipset", "restore"], render_ipsets(compiled)),
        ("v4", ["iptables-restore", "--noflush"], render_iptables(compiled, 4)),
        ("v6", ["ip6tables-restore", "--noflush"], render_iptables(compiled, 6)),
    ]
    times = {}
    for name, argv, text in texts:
        started = time.perf_counter()
        runner.run(argv, input=text, netns=netns, timeout=600)
        times[name] = time.perf_counter() - started
    return times


def run_kernel_benchmark(
    scenario: str | Path,
    *,
    host: str | None = None,
    runs: int = 5,
    runner: SubprocessRunner | None = None,
) -> dict[str, Any]:
    own_runner = runner is None
    runner = runner or SubprocessRunner()
    _sweep_dead_benchmarks(runner)
    prefix = f"{BENCH_PREFIX}{os.getpid()}-"
    try:
        return _run(runner, prefix, Path(scenario), host, runs)
    finally:
        remove_namespaces(prefix, runner)
        if own_runner:
            runner.close()


def _sweep_dead_benchmarks(runner: CommandRunner) -> None:
    """Namespaces of a benchmark that was killed (its pid is in the name) go first."""
    for name in list_namespaces(BENCH_PREFIX):
        owner = name[len(BENCH_PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            remove_namespaces(name, runner)


def _run(
    runner: SubprocessRunner, prefix: str, scenario: Path, host: str | None, runs: int
) -> dict[str, Any]:
    state = load_scenario(scenario, host)
    started = time.perf_counter()
    compiled = compile_host(state)
    compile_s = time.perf_counter() - started
    full = diff(None, compiled, include_builtin_jumps=True)
    # Undoing a full apply into an empty kernel is removing it all; passing that as the rollback
    # spares HostFirewall the table snapshot it would otherwise take.
    undo_full = removal_delta(compiled)

    full_totals: list[float] = []
    full_steps: dict[str, list[float]] = {}
    plain_totals: list[float] = []
    plain_iptables: list[float] = []
    for run in range(runs):
        with _namespace(runner, prefix, f"full{run}") as netns:
            report = HostFirewall(runner, netns, compiled.chain_prefix).apply(
                full, rollback=undo_full
            )
            report.raise_for_error()
            full_totals.append(report.duration_s)
            for name, seconds in report.steps:
                full_steps.setdefault(name, []).append(seconds)
        with _namespace(runner, prefix, f"plain{run}") as netns:
            times = _plain_restore(runner, netns, compiled)
            plain_totals.append(sum(times.values()))
            plain_iptables.append(times["v4"] + times["v6"])

    group_id, ports_using = _group_near_share(state, 0.10)
    result: dict[str, Any] = {
        "scenario": str(scenario),
        "host": host,
        "runs": runs,
        "ports": len(state.ports),
        "rules": {"4": _rule_count(compiled, 4), "6": _rule_count(compiled, 6)},
        "ipsets": len(compiled.ipsets),
        "restore_bytes": {
            "4": len(render_iptables(compiled, 4)),
            "6": len(render_iptables(compiled, 6)),
        },
        "compile_s": round(compile_s, 4),
        "full_apply_s": _median(full_totals),
        "full_apply_range_s": _spread(full_totals),
        "full_apply_steps_s": {name: _median(values) for name, values in full_steps.items()},
        "plain_restore_s": _median(plain_totals),
        "plain_restore_range_s": _spread(plain_totals),
        "plain_iptables_restore_s": _median(plain_iptables),
    }
    if result["plain_restore_s"]:
        result["full_vs_plain"] = round(result["full_apply_s"] / result["plain_restore_s"], 3)

    with _namespace(runner, prefix, "loaded") as netns:
        firewall = HostFirewall(runner, netns, compiled.chain_prefix)
        firewall.apply(full, rollback=undo_full).raise_for_error()

        current = compiled
        change_times: list[float] = []
        change_kernel: list[float] = []
        change_lines: list[int] = []
        changed_chains: list[int] = []
        for run in range(runs * 2):
            # Alternate between two variants so every run really changes the group.
            new = compile_host(_with_changed_group(state, group_id, run))
            started = time.perf_counter()
            delta = diff(current, new)
            diff_s = time.perf_counter() - started
            report = firewall.apply(delta, rollback=diff(new, current))
            report.raise_for_error()
            change_times.append(report.duration_s + diff_s)
            change_kernel.append(report.duration_s)
            change_lines.append(sum(report.rule_lines.values()))
            changed_chains.append(len(delta.changed_chains))
            current = new
        result["group_change"] = {
            "group": group_id,
            "ports_using": ports_using,
            "changed_chains": max(changed_chains),
            "rule_lines": max(change_lines),
            "apply_kernel_s": _median(change_kernel),
            "apply_kernel_range_s": _spread(change_kernel),
            "diff_plus_apply_s": _median(change_times),
        }

        base = compile_host(state)
        firewall.apply(diff(current, base), rollback=diff(base, current)).raise_for_error()
        current = base
        member_times: list[float] = []
        iptables_lines = 0
        for run in range(runs * 2):
            joined = state if run % 2 else _with_member(state, "203.0.113.250")
            new = compile_host(joined)
            delta = diff(current, new)
            iptables_lines += sum(len(text.splitlines()) for _family, text in delta.iptables)
            report = firewall.apply(delta)
            report.raise_for_error()
            member_times.append(report.duration_s)
            current = new
        result["membership_change"] = {
            "iptables_lines": iptables_lines,
            "apply_kernel_s": _median(member_times),
            "apply_kernel_range_s": _spread(member_times),
        }

        port_chain = next(
            (
                chain.name
                for table in current.v4.tables
                if table.name == "filter"
                for chain in table.chains
                if chain.name.startswith(f"{current.chain_prefix}-i")
            ),
            None,
        )
        read_one: list[float] = []
        read_all: list[float] = []
        for _ in range(runs):
            if port_chain is not None:
                started = time.perf_counter()
                firewall.read_chain(port_chain)
                read_one.append(time.perf_counter() - started)
            started = time.perf_counter()
            firewall.read_counters(4)
            read_all.append(time.perf_counter() - started)
        result["counters"] = {
            "read_one_port_chain_s": _median(read_one),
            "read_all_v4_s": _median(read_all),
        }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kernel",
        description="Time full and incremental applies of a scenario in fresh namespaces (root).",
    )
    parser.add_argument("scenario", metavar="SCENARIO.json")
    parser.add_argument("--host", default=None, help="only the ports of this host")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median reported)")
    args = parser.parse_args(argv)
    result = run_kernel_benchmark(args.scenario, host=args.host, runs=args.runs)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
