"""Repair: how long a committed change that was never published takes to reach every kernel.

Run on a lab (`manage.py lab up --hosts 2`): `python -m bench.repair --changes 20`. Each change
adds or removes a rule of the lab group (used by every lab host) through the actions, with the
after-commit publish switched off, as if the process had been killed right after its commit;
the clock starts at the commit and stops when the last host's kernel shows the rule in (or out
of) a port's ingress chain (`iptables -S CHAIN` in each namespace, every few milliseconds).
Kinds of divergence (`--kind`, default: all, in turn):

* outbox:  the change's intent is in the outbox (a web server killed after its commit);
* content: no intent either (a change written behind the actions' back): only the reconciler's
           content comparison can find it;
* redis:   as content, and the hosts' stored states and revision counters are deleted too.

The lab's control worker repairs; its `SGWEB_RECONCILE_INTERVAL_S` (5 s unless set) bounds it.
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

from sgweb import dispatch  # noqa: E402
from sgweb.firewall.names import ingress_chain  # noqa: E402
from sgweb.hostsync.channel import channel  # noqa: E402
from sgweb.hostsync.publish import PublishingHostSync, install  # noqa: E402
from sgweb.kernel.runner import default_runner  # noqa: E402
from sgweb.lab.core import LabState, _lab_actor, lab_dir  # noqa: E402
from sgweb.security import actions  # noqa: E402
from sgweb.security.models import SecurityGroup  # noqa: E402

KINDS = ("outbox", "content", "redis")


class NeverPublishes(PublishingHostSync):
    """The real hook, except that nothing is published after commit (the process 'died')."""

    def __init__(self, write_intents: bool) -> None:
        self.write_intents = write_intents

    def changed(self, hosts: set[str], reason: str) -> dict[str, int]:
        return super().changed(hosts, reason) if self.write_intents else {}

    def publish(self, receipts: dict[str, list[int]], reason: str) -> None:
        """Killed before this line."""


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _forget_stored_states(hosts: list[str]) -> None:
    via = channel()
    for host in hosts:
        keys = via.keys(host)
        via.redis.delete(keys.desired, keys.desired_revision, keys.desired_digest, keys.revision)


def repair(
    state: LabState, changes: int, kinds: tuple[str, ...], timeout_s: float
) -> dict[str, Any]:
    runner = default_runner()
    actor = _lab_actor()
    group = SecurityGroup.objects.get(pk=state.group_id)
    chains: dict[str, str] = {}
    for vm in state.vms:
        chains.setdefault(vm.host, ingress_chain(settings.FIREWALL_CHAIN_PREFIX, vm.port_id))

    def present(host: str, needle: str) -> bool:
        listing = runner.run(["iptables", "-w", "-S", chains[host]], netns=host, check=False)
        return needle in listing.stdout

    took: dict[str, list[float]] = {kind: [] for kind in kinds}
    rule = None
    for index in range(changes):
        kind = kinds[index % len(kinds)]
        adding = rule is None
        port = 31000 + index
        dispatch.install_host_sync(NeverPublishes(write_intents=kind == "outbox"))
        try:
            if adding:
                rule = actions.create_security_group_rule(
                    actor, group, direction="ingress", ethertype="IPv4", protocol="tcp",
                    port_range_min=port, port_range_max=port,
                )  # fmt: skip
                needle = f"--dport {port} "
            else:
                assert rule is not None
                needle = f"--dport {rule.port_range_min} "
                actions.delete_security_group_rule(actor, rule)
                rule = None
        finally:
            install()  # the real hook again
        if kind == "redis":
            _forget_stored_states(list(chains))
        committed = time.perf_counter()
        waiting = set(chains)
        while waiting:
            waiting = {host for host in waiting if present(host, needle) != adding}
            if time.perf_counter() - committed > timeout_s:
                raise RuntimeError(f"change {index} ({kind}) not repaired on {sorted(waiting)}")
            if waiting:
                time.sleep(0.005)
        took[kind].append(time.perf_counter() - committed)
    every = [seconds for values in took.values() for seconds in values]
    result: dict[str, Any] = {
        "hosts": len(chains),
        "changes": changes,
        "reconcile_interval_s": float(settings.SGWEB_RECONCILE_INTERVAL_S),
        "repair_p50_s": round(statistics.median(every), 3),
        "repair_p95_s": round(_percentile(every, 0.95), 3),
        "repair_max_s": round(max(every), 3),
    }
    for kind, values in took.items():
        if values:
            result[f"{kind}_p50_s"] = round(statistics.median(values), 3)
            result[f"{kind}_max_s"] = round(max(values), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.repair", description=__doc__)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    state = LabState.load(lab_dir())
    if state is None:
        parser.error("no lab: run `manage.py lab up --hosts 2` first")
    kinds = KINDS if args.kind == "all" else (args.kind,)
    print(json.dumps(repair(state, args.changes, kinds, args.timeout), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
