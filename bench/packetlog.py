"""`python -m bench.packetlog [--ports 1000]`: what packet logging costs the compiler.

One generated host (bench.scenarios), compiled cold and rendered to text (both families) with
no port logged, a tenth of the ports logged (event ALL) and every port logged. Logged ports
share chain prototypes (a stand-in for the port id in the log prefixes), so the cost is the
extra rules. Medians of --runs runs; rules counts the -A lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import statistics
import sys
import time
from collections.abc import Sequence

from bench.scenarios import generated_scenario
from sgweb.firewall import compiler, render, validate
from sgweb.firewall.compiler import compile_host
from sgweb.firewall.model import LOG_ALL, HostState
from sgweb.firewall.render import render_iptables
from sgweb.firewall.scenario import build_scenario_state, scenario_hosts


def _logged(state: HostState, share: float) -> HostState:
    every = round(1 / share) if share else 0
    ports = tuple(
        dataclasses.replace(port, log_events=LOG_ALL) if every and i % every == 0 else port
        for i, port in enumerate(state.ports)
    )
    return dataclasses.replace(state, ports=ports)


def _compile_and_render(state: HostState) -> tuple[float, int]:
    validate.clear_caches()
    render.clear_caches()
    compiler.clear_caches()
    gc.collect()
    started = time.perf_counter()
    compiled = compile_host(state)
    text = render_iptables(compiled, 4) + render_iptables(compiled, 6)
    elapsed = time.perf_counter() - started
    return elapsed, sum(1 for line in text.splitlines() if line.startswith("-A "))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.packetlog", description=__doc__)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    scenario = generated_scenario(args.ports)
    host = scenario_hosts(scenario)[0]
    base = build_scenario_state(scenario, host)
    result: dict[str, object] = {"ports": len(base.ports)}
    for label, share in (("none", 0.0), ("tenth", 0.1), ("all", 1.0)):
        state = _logged(base, share)
        samples = [_compile_and_render(state) for _ in range(args.runs)]
        result[f"compile_render_s_{label}_logged"] = round(
            statistics.median(s[0] for s in samples), 4
        )
        result[f"rules_{label}_logged"] = samples[0][1]
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
