"""`python -m bench.drift [--ports 1000]`: what a drift check costs (root: a scratch namespace).

The agent applies a generated N-port host, then prints (JSON):

* `unchanged_check_ms`: a check when nothing moved (the nf_tables generation and the bridge
  sysctls read, nothing else), median of 200;
* `full_check_ms`: a check that reads and compares everything (`force=True`), median of 5;
* `bypass_check_ms`: the check after `iptables -I FORWARD 1 -j ACCEPT`, which reads, finds the
  rule, puts our jumps back first and reports (the repair included);
* `core_share_at_3s_interval`: the share of one core the default 3 s interval costs when
  nothing changes.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from typing import Any

from bench.detach import _Quiet, _Store
from bench.scenarios import generated_scenario
from sgweb.firewall.scenario import load_scenario
from sgweb.kernel.apply import HostFirewall
from sgweb.kernel.runner import default_runner
from sgweb.kernel.watch import KernelWatch
from worker.agent import Agent


def _timed_ms(call: Any) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def run(ports: int) -> dict[str, Any]:
    state = load_scenario(generated_scenario(ports))
    runner = default_runner()
    netns = f"sgwa-bench-{secrets.token_hex(3)}"
    runner.run(["ip", "netns", "add", netns])
    watch = KernelWatch(netns)
    try:
        store = _Store()
        store.publish(1, state)
        agent = Agent("bench", store, HostFirewall(runner, netns), _Quiet(), watch=watch)
        agent.full_sync("bench")
        agent.check_drift()  # learns the kernel as applied
        unchanged = [_timed_ms(agent.check_drift) for _ in range(200)]
        full = [_timed_ms(lambda: agent.check_drift(force=True)) for _ in range(5)]
        # Read at once (the agent spaces reads on busy hosts: the forced reads above would make
        # it wait about nine times their length).
        agent.drift_watch.next_read_at = 0.0
        runner.run(["iptables", "-I", "FORWARD", "1", "-j", "ACCEPT"], netns=netns)
        bypass_ms = _timed_ms(agent.check_drift)
        first = runner.run(["iptables", "-S", "FORWARD"], netns=netns).stdout.splitlines()[1]
        median_unchanged = statistics.median(unchanged)
        return {
            "ports": len(state.ports),
            "unchanged_check_ms": round(median_unchanged, 3),
            "full_check_ms": round(statistics.median(full), 1),
            "bypass_check_ms": round(bypass_ms, 1),
            "first_forward_rule_after": first,
            "core_share_at_3s_interval": f"{median_unchanged / 3000:.6%}",
        }
    finally:
        watch.close()
        runner.release_netns(netns)
        runner.run(["ip", "netns", "del", netns], check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift")
    parser.add_argument("--ports", type=int, default=1000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.ports), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
