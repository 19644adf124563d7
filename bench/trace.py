"""How long a static verdict takes: `python -m bench.trace SCENARIO.json`.

Prints JSON: the one-off cost of compiling and preparing the host, then the median / p95 / max
of a trace, of a trace plus its explanation, and of a two-host-style flow with its reply, over
packets to and from random ports of the host. Figures, not assertions: the target (issue 5) is
a static verdict in 10 ms or less on a 1000-port host.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from sgweb.firewall import names
from sgweb.firewall.model import HostState
from sgweb.firewall.trace.explain import explain
from sgweb.firewall.trace.flow import HostTarget, port_address, trace_flow
from sgweb.firewall.trace.tracer import Packet, prepare, trace

_REMOTES = ("198.51.100.7", "203.0.113.200", "192.0.2.250")


def _summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 4),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 4),
        "max_ms": round(ordered[-1] * 1000, 4),
    }


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def sample_packets(state: HostState, count: int, seed: int = 1) -> list[Packet]:
    """Inbound tcp to random ports and outbound from them, each by its qbr's veth."""
    rng = random.Random(seed)
    ports = [p for p in state.ports if port_address(p, 4) is not None]
    packets = []
    for _ in range(count):
        port = rng.choice(ports)
        tap = port.device or names.device_name(port.id)
        veth = names.veth_name(port.id)
        remote = rng.choice(_REMOTES)
        if rng.random() < 0.5:
            packets.append(
                Packet(
                    src=remote,
                    dst=port_address(port, 4),
                    protocol=rng.choice(["tcp", "udp", "icmp"]),
                    dport=rng.choice([22, 53, 80, 443, 5432]),
                    physdev_in=veth,
                    physdev_out=tap,
                )
            )
        else:
            packets.append(
                Packet(
                    src=port_address(port, 4),
                    dst=remote,
                    src_mac=port.mac_address,
                    protocol="tcp",
                    dport=443,
                    physdev_in=tap,
                    physdev_out=veth,
                )
            )
    return packets


def run_benchmark(scenario: str, host: str | None = None, runs: int = 300) -> dict[str, Any]:
    from sgweb.firewall.compiler import compile_host
    from sgweb.firewall.scenario import load_scenario

    state = load_scenario(scenario, host)
    start = time.perf_counter()
    compiled = compile_host(state)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    index = prepare(compiled)
    prepare_s = time.perf_counter() - start
    packets = sample_packets(state, runs)
    # The first walk of a chain compiles its matchers; time that cold path separately.
    cold = [_timed(lambda p=p: trace(compiled, p, index=index)) for p in packets[:20]]
    warm = [_timed(lambda p=p: trace(compiled, p, index=index)) for p in packets]
    explained = [
        _timed(lambda p=p: explain(trace(compiled, p, index=index), state)) for p in packets
    ]
    target = [HostTarget(host or "host", state, compiled, index)]
    rng = random.Random(2)
    flows = []
    for _ in range(max(1, runs // 10)):
        port = rng.choice(state.ports)
        flows.append(
            _timed(
                lambda port=port: trace_flow(
                    target, rng.choice(_REMOTES), port.id, protocol="tcp", dport=22, reply=True
                )
            )
        )
    rules = sum(
        len(chain.rules)
        for family in (compiled.v4, compiled.v6)
        for table in family.tables
        for chain in table.chains
    )
    return {
        "ports": len(state.ports),
        "rules": rules,
        "compile_s": round(compile_s, 4),
        "prepare_s": round(prepare_s, 4),
        "trace_first_visits": _summary(cold),
        "trace": _summary(warm),
        "trace_and_explain": _summary(explained),
        "flow_with_reply": _summary(flows),
        "runs": runs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace")
    parser.add_argument("scenario", metavar="SCENARIO.json")
    parser.add_argument("--host", default=None)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args(argv)
    result = run_benchmark(args.scenario, args.host, args.runs)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
