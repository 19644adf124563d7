"""`python -m bench.droplog_explain [--ports 1000] [--flows 2000]`: what explaining a logged
flow costs the control plane on one host.

One generated host (bench.scenarios), compiled and prepared once (the control plane keeps it
so, `sgweb.hostsync.compiled`), every port logged. Flows are dropped and accepted packets to
and from random ports (random remotes from the documentation ranges, ports and ICMP types), as
the agent reports them. Prints JSON: median / p95 / max of explaining a flow never seen before
(`sgweb.droplog.explain.explain_flow`: one trace of the port's traversal plus the words), and of
a flow whose shape was explained already (`ExplanationCache`: another source port of the same
client and service). Figures, not assertions: the target (issue 13) is at most 2 ms per flow
on a 1000-port host.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from bench.scenarios import generated_scenario
from sgweb.droplog.explain import ExplanationCache, explain_flow
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import LOG_ALL
from sgweb.firewall.scenario import build_scenario_state, scenario_hosts
from sgweb.firewall.trace.flow import HostTarget, port_address
from sgweb.firewall.trace.tracer import prepare
from sgweb.wire.packetlog import Flow

_REMOTES = ("198.51.100.7", "203.0.113.200", "192.0.2.250", "100.64.3.9", "198.51.100.99")


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 4),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 4),
        "max_ms": round(ordered[-1] * 1000, 4),
    }


def sample_flows(target: HostTarget, count: int, seed: int = 1) -> list[Flow]:
    rng = random.Random(seed)
    ports = [p for p in target.state.ports if port_address(p, 4) is not None]
    flows = []
    for n in range(count):
        port = rng.choice(ports)
        address = port_address(port, 4) or ""
        remote = rng.choice(_REMOTES)
        ingress = rng.random() < 0.7
        protocol = rng.choice((6, 6, 17, 1))
        ported = protocol != 1
        flows.append(
            Flow(
                port_id=port.id,
                direction="ingress" if ingress else "egress",
                event="DROP" if rng.random() < 0.8 else "ACCEPT",
                ethertype="IPv4",
                protocol=protocol,
                src=remote if ingress else address,
                dst=address if ingress else remote,
                src_port=30000 + n if ported else None,
                dst_port=rng.choice((22, 53, 80, 443, 5432, 8080)) if ported else None,
                icmp_type=None if ported else 8,
                icmp_code=None if ported else 0,
                first_seen=1.0,
                last_seen=1.0,
            )
        )
    return flows


def _other(flow: Flow) -> Flow:
    """A flow of another shape on the same port: another remote address and service port."""
    remote = "203.0.113.77"
    moved = {"src": remote} if flow.direction == "ingress" else {"dst": remote}
    if flow.dst_port is not None:
        moved["dst_port"] = flow.dst_port + 1  # type: ignore[assignment]
    return dataclasses.replace(flow, **moved)  # type: ignore[arg-type]


def _timed(action: Callable[[], object], cpu: list[float]) -> float:
    """Wall time of one call; its CPU time (this thread's) goes to `cpu`. On a shared, loaded
    machine the wall p95 is mostly the scheduler's; the CPU time is what the flow costs."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    action()
    cpu.append(time.thread_time() - start_cpu)
    return time.perf_counter() - start


def _loadavg() -> list[str] | None:
    if not os.path.exists("/proc/loadavg"):
        return None
    with open("/proc/loadavg") as source:
        return source.read().split()[:3]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.droplog_explain", description=__doc__)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--flows", type=int, default=2000)
    args = parser.parse_args(argv)
    scenario = generated_scenario(args.ports)
    host = scenario_hosts(scenario)[0]
    state = build_scenario_state(scenario, host)
    state = dataclasses.replace(
        state, ports=tuple(dataclasses.replace(p, log_events=LOG_ALL) for p in state.ports)
    )
    start = time.perf_counter()
    compiled = compile_host(state)
    target = HostTarget(host, state, compiled, prepare(compiled))
    prepared_s = time.perf_counter() - start
    flows = sample_flows(target, args.flows)
    # The first flow of a port after its host was compiled also compiles the matchers of the
    # port's chains (the tracer does that lazily, once); later new flows find them ready.
    first_cpu: list[float] = []
    first = [_timed(lambda f=f: explain_flow(target, f), first_cpu) for f in flows]
    other = [_other(f) for f in flows]
    warm_cpu: list[float] = []
    warm = [_timed(lambda f=f: explain_flow(target, f), warm_cpu) for f in other]
    cache = ExplanationCache()
    for flow in flows:
        cache.explain(target, flow)
    again = [
        _timed(lambda f=f: cache.explain(target, dataclasses.replace(f, src_port=65000)), [])
        for f in flows
    ]
    texts = {explain_flow(target, f).text.split(":")[0] for f in flows[:200]}
    result = {
        "ports": len(state.ports),
        "flows": len(flows),
        "compile_and_prepare_s": round(prepared_s, 3),
        "explain_first_flow_of_port": _summary(first),
        "explain_new_flow": _summary(warm),
        "explain_first_flow_of_port_cpu": _summary(first_cpu),
        "explain_new_flow_cpu": _summary(warm_cpu),
        "explain_known_shape": _summary(again),
        "sample_openings": sorted(texts)[:4],
        "loadavg": _loadavg(),
    }
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
