"""Propagation: from a change's action returning to every affected host's kernel having it.

Run on a lab (`manage.py lab up --hosts 3`): `python -m bench.propagation --changes 200`.
Each change adds or removes a rule of the lab group, which every lab host uses; the clock
starts when the action function returns (the API view returns right after it) and stops when
the last host's kernel shows the rule in (or out of) a port's ingress chain, polled with
`iptables -S CHAIN` in each host's namespace every few milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from bench.djangosetup import setup

setup()

from django.conf import settings  # noqa: E402

from sgweb.firewall.names import ingress_chain  # noqa: E402
from sgweb.kernel.runner import default_runner  # noqa: E402
from sgweb.lab.core import LabState, _lab_actor, lab_dir  # noqa: E402
from sgweb.security import actions  # noqa: E402
from sgweb.security.models import SecurityGroup  # noqa: E402


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def propagation(state: LabState, changes: int = 200, timeout_s: float = 10.0) -> dict[str, Any]:
    runner = default_runner()
    actor = _lab_actor()
    group = SecurityGroup.objects.get(pk=state.group_id)
    chains = {}
    for vm in state.vms:
        chains.setdefault(vm.host, ingress_chain(settings.FIREWALL_CHAIN_PREFIX, vm.port_id))

    def present(host: str, needle: str) -> bool:
        listing = runner.run(["iptables", "-w", "-S", chains[host]], netns=host, check=False)
        return needle in listing.stdout

    api_s: list[float] = []
    latencies: list[float] = []
    rule = None
    for index in range(changes):
        adding = index % 2 == 0
        port = 30000 + index // 2
        needle = f"--dport {port} "
        started = time.perf_counter()
        if adding:
            rule = actions.create_security_group_rule(
                actor, group, direction="ingress", ethertype="IPv4", protocol="tcp",
                port_range_min=port, port_range_max=port,
            )  # fmt: skip
        else:
            actions.delete_security_group_rule(actor, rule)
        returned = time.perf_counter()
        api_s.append(returned - started)
        waiting = set(chains)
        while waiting:
            waiting = {host for host in waiting if present(host, needle) != adding}
            if time.perf_counter() - returned > timeout_s:
                raise RuntimeError(f"change {index} not applied on {sorted(waiting)}")
            if waiting:
                time.sleep(0.002)
        latencies.append(time.perf_counter() - returned)
    return {
        "hosts": len(chains),
        "changes": changes,
        "propagation_p50_s": round(statistics.median(latencies), 4),
        "propagation_p95_s": round(_percentile(latencies, 0.95), 4),
        "propagation_max_s": round(max(latencies), 4),
        "action_p50_s": round(statistics.median(api_s), 4),
        "action_p95_s": round(_percentile(api_s, 0.95), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args(argv)
    state = LabState.load(lab_dir())
    if state is None:
        parser.error("no lab: run `manage.py lab up --hosts 3` first")
    print(json.dumps(propagation(state, args.changes), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
