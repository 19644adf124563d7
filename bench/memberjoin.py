"""`python -m bench.memberjoin --members 10000,50000`: addresses joining a big remote group.

The membership part of `bench.fanout` without its database, Redis and thousand simulated
agents (minutes to set up at 50,000 ports): one host's state as the control plane sends it
(`--ports` ports in Neutron's default group, which admits its own members; the members are
plain addresses sorted as strings, as `desired_state` reads them), compiled once with the
agent's own compile cache, then `--joins` addresses join one after another: each step is a
compile (timed), then the delta and the rollback the agent keeps (timed apart). The first join
after a start also builds what the later ones reuse; it is shown apart.

Every `--every`-th step is also checked against a compile from cold (the same ipsets), after
the timed loop.
Figures: min / p50 / p95 / max in ms, the collections that ran during the steps (gc.callbacks),
and the load average (a 1 ms step on a busy 2-core machine often waits for a CPU).
`--profile` prints the cProfile of the joins instead of timing them. `--fresh-strings` decodes
each join's members anew, as an agent does with each new piece (the default reuses the string
objects, so the comparison of the old and new tuples finds most of them identical).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import ipaddress
import json
import os
import pstats
import statistics
import sys
import time
from typing import Any

from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.model import HostState, Port, SecurityGroup, SecurityGroupRule

GROUP = "5ec00000-0000-4000-8000-000000000001"


def host_state(members: int, ports: int) -> HostState:
    """`ports` ports of this host in a group whose ingress rule names the group itself."""
    group = SecurityGroup(
        GROUP,
        name="default",
        rules=(
            SecurityGroupRule("in-v4", "ingress", "IPv4", remote_group_id=GROUP),
            SecurityGroupRule("out-v4", "egress", "IPv4"),
            SecurityGroupRule("out-v6", "egress", "IPv6"),
        ),
    )
    first = ipaddress.ip_address("100.64.0.10")
    addresses = [str(first + i) for i in range(members)]
    own = tuple(
        Port(
            f"{i:08x}-be00-4000-8000-000000000000",
            f"fa:16:3e:00:{i >> 8 & 255:02x}:{i & 255:02x}",
            fixed_ips=(addresses[i],),
            security_groups=(GROUP,),
            dhcp_servers=("100.64.0.2",),
        )
        for i in range(min(ports, members))
    )
    return HostState(
        ports=own,
        security_groups=(group,),
        # Decoded from JSON as the agent reads its piece: the strings lie in memory in the
        # tuple's order (a copy of 50,000 walks them in order, as in an agent).
        remote_group_members=((GROUP, tuple(json.loads(json.dumps(sorted(addresses))))),),
    )


def _with_members(state: HostState, members: tuple[str, ...]) -> HostState:
    return dataclasses.replace(state, remote_group_members=((GROUP, members),))


class _CollectorClock:
    """Seconds spent in the cyclic collector while active (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.runs = 0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.runs += 1


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": round(ordered[0] * 1000, 3),
        "p50": round(statistics.median(ordered) * 1000, 3),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 3),
        "max": round(ordered[-1] * 1000, 3),
    }


def run(
    members: int, ports: int, joins: int, every: int, profile: bool, fresh: bool = False
) -> dict[str, Any]:
    state = host_state(members, ports)
    current = dict(state.remote_group_members)[GROUP]
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    gc.collect()
    compiles: list[float] = []
    diffs: list[float] = []
    cpus: list[float] = []  # the compile's CPU time: what waiting for a busy CPU leaves out
    clock = _CollectorClock()
    profiler = cProfile.Profile() if profile else None
    gc.callbacks.append(clock)
    delta = None
    checks: list[tuple[HostState, Any]] = []
    try:
        for i in range(joins):
            joining = str(ipaddress.ip_address("100.127.0.1") + i)
            current = tuple(sorted((*current, joining)))  # as the control plane sends it
            if fresh:  # as an agent decodes each new piece: new strings, equal to the last
                current = tuple(json.loads(json.dumps(current)))
            after_state = _with_members(state, current)
            if profiler is not None:
                profiler.enable()
            cpu_started = time.process_time()
            started = time.perf_counter()
            after = compile_host(after_state, cache=cache)
            compiled = time.perf_counter()
            cpus.append(time.process_time() - cpu_started)
            delta = diff(before, after)
            diff(after, before)  # the rollback the agent keeps
            done = time.perf_counter()
            if profiler is not None:
                profiler.disable()
            compiles.append(compiled - started)
            diffs.append(done - compiled)
            if every and i % every == every - 1:
                checks.append((after_state, after.ipsets))
            before = after
    finally:
        gc.callbacks.remove(clock)
    for checked, ipsets in checks:  # after the timed loop: its collections are not the joins'
        assert ipsets == compile_host(checked).ipsets, "ipsets differ from a compile from cold"
    assert delta is not None
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    ipset_lines = (delta.ipsets.prepare + delta.ipsets.commit).splitlines()
    return {
        "members": len(current),
        "first_join_compile_ms": round(compiles[0] * 1000, 3),
        "first_join_compile_cpu_ms": round(cpus[0] * 1000, 3),
        "compile_ms": _ms(compiles[1:]),
        "compile_cpu_ms": _ms(cpus[1:]),
        "delta_and_rollback_ms": _ms(diffs[1:]),
        "gc_runs": clock.runs,
        "gc_ms": round(clock.seconds * 1000, 3),
        "iptables_lines": sum(text.count("\n") for _, text in delta.iptables),
        "last_ipset_lines": ipset_lines,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="10000,50000", help="comma-separated sizes")
    parser.add_argument("--ports", type=int, default=50, help="ports on this host")
    parser.add_argument("--joins", type=int, default=101)
    parser.add_argument("--every", type=int, default=25, help="check every N-th join (0: never)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--fresh-strings",
        action="store_true",
        help="each join's members decoded anew (new string objects, as an agent's new piece:"
        " the comparison reads every address, and the compile frees the last piece's)",
    )
    args = parser.parse_args(argv)
    results = [
        run(int(size), args.ports, args.joins, args.every, args.profile, args.fresh_strings)
        for size in args.members.split(",")
    ]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
