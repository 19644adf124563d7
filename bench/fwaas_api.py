"""`python -m bench.fwaas_api [--routers 50] [--nodes 5] [--rules 1000] [--runs 20]`: the
control plane's share of a FWaaS change (issue 16).

A throwaway test database: `--routers` routers spread over `--nodes` network nodes, each with
one interface; one firewall group holds every interface and uses one policy as its ingress and
egress policy, with `--rules` rules. Timed:

- insert: one rule inserted into that policy (the action, its commit, and the installed
  network-node sender building every reached node's `NetworkNodeState`, as the agent path
  will before publishing); p50/p95 over --runs inserts;
- state: building one node's `NetworkNodeState` alone (median of --runs).

The kernel's share (compile and apply on the node) is the FWaaS compiler's benchmark.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.djangosetup import setup

setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import transaction  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

from sgweb import dispatch  # noqa: E402
from sgweb.fwaas import actions  # noqa: E402
from sgweb.fwaas.desired_state import network_node_state  # noqa: E402
from sgweb.networks.actions import create_host, create_network, create_subnet  # noqa: E402
from sgweb.routers import actions as router_actions  # noqa: E402
from sgweb.tenancy.choices import Role  # noqa: E402
from sgweb.tenancy.models import Profile, Project, Quota  # noqa: E402


def _world(routers: int, nodes: int, rules: int) -> tuple[User, Project, object]:
    admin = User.objects.create_user("bench-admin")
    Profile.objects.create(user=admin, role=Role.ADMIN)
    project = Project.objects.create(name="bench")
    Quota.objects.create(project=project)
    for index in range(nodes):
        create_host(admin, name=f"network{index + 1}", network_node=True)
    ports = []
    for index in range(routers):
        network = create_network(admin, project, name=f"net{index}")
        subnet = create_subnet(admin, network, cidr=f"100.64.{index}.0/24")
        router = router_actions.create_router(admin, project, name=f"r{index}")
        ports.append(router_actions.add_interface(admin, router, subnet).port)
    made = [
        actions.create_rule(admin, project, name=f"rule{index}", protocol="tcp",
                            destination_port=str(1000 + index), action="allow")
        for index in range(rules)
    ]  # fmt: skip
    policy = actions.create_policy(admin, project, name="shared-edge", firewall_rules=made)
    actions.create_group(admin, project, name="edge", ingress_policy=policy,
                         egress_policy=policy, ports=ports)  # fmt: skip
    return admin, project, policy


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(routers: int, nodes: int, rules: int, runs: int) -> dict[str, object]:
    admin, project, policy = _world(routers, nodes, rules)
    reached: list[str] = []

    def sender(hosts: frozenset[str], reason: str) -> None:
        for host in sorted(hosts):
            network_node_state(host)
            reached.append(host)

    dispatch.install_network_node_sender(sender)
    inserts = []
    for index in range(runs):
        rule = actions.create_rule(admin, project, name=f"new{index}", protocol="udp",
                                   destination_port=str(2000 + index), action="deny")  # fmt: skip
        reached.clear()
        started = time.perf_counter()
        with transaction.atomic():
            actions.insert_rule(admin, policy, rule)
        inserts.append(time.perf_counter() - started)
        assert len(reached) == nodes, reached
    dispatch.install_network_node_sender(None)
    states = []
    for _ in range(runs):
        started = time.perf_counter()
        state = network_node_state("network1")
        states.append(time.perf_counter() - started)
    return {
        "routers": routers,
        "nodes": nodes,
        "rules": rules,
        "routers_on_network1": len(state.routers),
        "insert_p50_ms": round(statistics.median(inserts) * 1000, 1),
        "insert_p95_ms": round(_p95(inserts) * 1000, 1),
        "state_median_ms": round(statistics.median(states) * 1000, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fwaas_api", description=__doc__)
    parser.add_argument("--routers", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        with override_settings(QUOTA_ROUTERS=-1, QUOTA_FIREWALL_RULES=-1):
            report = run(args.routers, args.nodes, args.rules, args.runs)
    finally:
        teardown_databases(old_config, verbosity=0)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
