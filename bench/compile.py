"""`python -m bench.compile SCENARIO.json`: medians of full and incremental compiles.

- compile_s: every host of the scenario from cold (no caches), validation included, to text
  (iptables-restore for both families and ipset restore).
- update_s: one group's rules change (a rule is added) -> recompile with the host's
  CompileCache + diff + delta text.
- member_s: a port on another host joins a remote group -> the same; only ipsets change.
- local_join_s: a port of this host joins one more group (its own chains change), for reference.

Compile, diff and render run under one `gc_paused()`, as a caller doing them in a row should:
the IR is acyclic (reference counting frees it), and a collector pass between the steps would
only walk tens of thousands of fresh objects. Every real process pays for the objects that
survive, though: the first allocation after the pause runs the collection the compile made due.
Each figure therefore includes the time of every collection that ran during the step and the
one it triggers right after (timed with `gc.callbacks`); `*_gc_s` shows that part alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sgweb.firewall import compiler, render, validate
from sgweb.firewall.compiled_rules import gc_paused
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import Delta, diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import HostState, SecurityGroupRule
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.scenario import _document, build_scenario_state, scenario_hosts

JOINING_ADDRESS = "198.51.100.254"


def _cold() -> None:
    validate.clear_caches()
    render.clear_caches()
    compiler.clear_caches()
    gc.collect()  # every run starts from a settled heap, not from the last run's garbage


def _full_text(compiled: CompiledHost) -> tuple[str, str, str]:
    return render_iptables(compiled, 4), render_iptables(compiled, 6), render_ipsets(compiled)


def _median(samples: list[float]) -> float:
    return round(statistics.median(samples), 6)


@dataclasses.dataclass
class Timing:
    """Medians of wall-clock and CPU time (collections included); CPU time shows the cost when
    other work shares the two cores, the minimum shows the best case."""

    wall: list[float] = dataclasses.field(default_factory=list)
    cpu: list[float] = dataclasses.field(default_factory=list)
    gc: list[float] = dataclasses.field(default_factory=list)

    def figures(self, name: str) -> dict[str, float]:
        return {
            f"{name}_s": _median(self.wall),
            f"{name}_cpu_s": _median(self.cpu),
            f"{name}_min_s": round(min(self.wall), 6),
            f"{name}_gc_s": _median(self.gc),
        }


class _CollectorClock:
    """Seconds spent in the cyclic garbage collector while installed (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> _CollectorClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self)


def _timed(setup: Callable[[], Any], action: Callable[[Any], Any], runs: int) -> tuple[Timing, Any]:
    timing = Timing()
    result = None
    for _ in range(runs):
        result = None  # the last run's output is not kept alive through this run
        prepared = setup()
        with _CollectorClock() as collector:
            cpu_started = time.process_time()
            started = time.perf_counter()
            result = action(prepared)
            # The first container allocated runs the collection the step made due (if any).
            _trigger = [result]
            timing.wall.append(time.perf_counter() - started)
            timing.cpu.append(time.process_time() - cpu_started)
        timing.gc.append(collector.seconds)
        del _trigger
    return timing, result


def _group_change(state: HostState) -> HostState:
    """The first used group gains one ingress rule."""
    used = next(gid for port in state.ports for gid in port.security_groups)
    groups = []
    for group in state.security_groups:
        if group.id == used:
            extra = SecurityGroupRule(
                id="bench-added-rule",
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=4242,
                port_range_max=4242,
                remote_ip_prefix="203.0.113.0/24",
            )
            group = dataclasses.replace(group, rules=(*group.rules, extra))
        groups.append(group)
    return dataclasses.replace(state, security_groups=tuple(groups))


def _remote_join(state: HostState) -> HostState:
    """A port elsewhere, with address 198.51.100.254, joins the first remote group."""
    members = list(state.remote_group_members)
    if not members:
        return state
    group_id, addresses = members[0]
    members[0] = (group_id, (*addresses, JOINING_ADDRESS))
    return dataclasses.replace(state, remote_group_members=tuple(members))


def _local_join(state: HostState) -> HostState:
    """The first port with port security gets one more group."""
    all_groups = [group.id for group in state.security_groups]
    ports = list(state.ports)
    for index, port in enumerate(ports):
        spare = [gid for gid in all_groups if gid not in port.security_groups]
        if port.port_security_enabled and spare:
            groups = (*port.security_groups, spare[0])
            ports[index] = dataclasses.replace(port, security_groups=groups)
            break
    return dataclasses.replace(state, ports=tuple(ports))


def _delta_lines(delta: Delta) -> dict[str, int]:
    iptables = sum(
        1 for _family, text in delta.iptables for line in text.splitlines() if line[:2] == "-A"
    )
    ipset = sum(len(text.splitlines()) for text in (delta.ipsets.prepare, delta.ipsets.commit))
    return {"iptables_rule_lines": iptables, "ipset_lines": ipset}


def _incremental(
    states: list[HostState], change: Callable[[HostState], HostState], runs: int
) -> tuple[Timing, dict[str, int]]:
    def setup() -> list[tuple[CompileCache, CompiledHost, HostState]]:
        prepared = []
        for state in states:
            cache = CompileCache()
            prepared.append((cache, compile_host(state, cache=cache), change(state)))
        gc.collect()
        return prepared

    def action(prepared: list[tuple[CompileCache, CompiledHost, HostState]]) -> list[Delta]:
        deltas = []
        with gc_paused():
            for cache, previous, new_state in prepared:
                deltas.append(diff(previous, compile_host(new_state, cache=cache)))
        return deltas

    seconds, deltas = _timed(setup, action, runs)
    totals = {"iptables_rule_lines": 0, "ipset_lines": 0, "changed_chains": 0}
    for delta in deltas:
        for key, value in _delta_lines(delta).items():
            totals[key] += value
        totals["changed_chains"] += len(delta.changed_chains)
    return seconds, totals


def run_benchmark(source: str | Path | Mapping[str, Any], runs: int = 7) -> dict[str, Any]:
    document = _document(source)
    states = [build_scenario_state(document, host) for host in scenario_hosts(document)]

    def full(_: None) -> list[tuple[CompiledHost, tuple[str, str, str]]]:
        out = []
        with gc_paused():
            for state in states:
                compiled = compile_host(state)
                out.append((compiled, _full_text(compiled)))
        return out

    compile_timing, compiled = _timed(_cold, full, runs)
    rules = sets = members = lines = 0
    for host, texts in compiled:
        rules += sum(
            len(chain.rules)
            for family in (host.v4, host.v6)
            for table in family.tables
            for chain in table.chains
        )
        sets += len(host.ipsets)
        members += sum(len(s.members) for s in host.ipsets)
        lines += sum(text.count("\n-A ") for text in texts[:2])
    update_timing, update = _incremental(states, _group_change, runs)
    member_timing, member = _incremental(states, _remote_join, runs)
    local_join_timing, local_join = _incremental(states, _local_join, runs)
    return {
        "scenario": str(source) if not isinstance(source, Mapping) else "<document>",
        "hosts": len(states),
        "ports": sum(len(state.ports) for state in states),
        "runs": runs,
        **compile_timing.figures("compile"),
        **update_timing.figures("update"),
        **member_timing.figures("member"),
        **local_join_timing.figures("local_join"),
        "rules": rules,
        "iptables_rule_lines": lines,
        "ipsets": sets,
        "ipset_members": members,
        "update_delta": update,
        "member_delta": member,
        "local_join_delta": local_join,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compile", description="Time full and incremental compiles (JSON)."
    )
    parser.add_argument("scenario", metavar="SCENARIO.json")
    parser.add_argument("--runs", type=int, default=7, help="runs per figure (median reported)")
    parser.add_argument(
        "--neutron",
        action="store_true",
        help="also run Neutron's own driver on the scenario (bench.neutron_compare), with ratios",
    )
    args = parser.parse_args(argv)
    result = run_benchmark(args.scenario, runs=args.runs)
    if args.neutron:
        from bench.neutron_compare import run_neutron

        result.update(run_neutron(args.scenario, runs=max(1, min(args.runs, 3))))
        result["neutron_full_ratio"] = round(result["neutron_full_s"] / result["compile_s"], 1)
        # CPU time: the ratio that a loaded machine (other work on the two cores) bends least
        result["neutron_full_cpu_ratio"] = round(
            result["neutron_full_cpu_s"] / result["compile_cpu_s"], 1
        )
        result["neutron_update_ratio"] = round(result["neutron_update_s"] / result["update_s"], 1)
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
