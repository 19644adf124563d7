"""Seeded random groups, rules and ports, random probes: kernel and tracer must agree on each.

One topology per bridge shape serves every seed; each seed loads a different random firewall.
A failure names the seed and the probe, so it can be replayed with the scenarios module.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, remove_namespaces
from tests.kernel import oracle
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.scenarios import (
    PROBE_PORTS,
    REMOTE_ADDRESSES,
    a_source_for,
    an_ingress_rule_of,
    make_ports,
    random_state,
)

pytestmark = pytest.mark.kernel

PORTS = make_ports(4)
REMOTE_NAMES = tuple(REMOTE_ADDRESSES)
SEEDS = range(12)
PROBES_PER_SEED = 8


@pytest.fixture(scope="module")
def labs(kernel_runner: SubprocessRunner) -> Iterator[dict[str, FirewallLab]]:
    prefixes = []
    try:
        built = {}
        for shape in (SHARED_BRIDGE, BRIDGE_PER_PORT):
            prefixes.append(new_prefix())
            built[shape] = build_lab(kernel_runner, prefixes[-1], PORTS, shape)
        for lab in built.values():
            lab.apply_fresh(random_state(0, PORTS))
            lab.settle()
        yield built
    finally:
        for prefix in prefixes:
            remove_namespaces(prefix, kernel_runner)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_firewalls_agree_with_the_tracer_probe_by_probe(
    labs: dict[str, FirewallLab], seed: int
) -> None:
    lab = labs[SHARED_BRIDGE if seed % 2 == 0 else BRIDGE_PER_PORT]
    state = random_state(seed, PORTS, groups=3, max_rules=6)
    lab.apply_fresh(state)
    rng = random.Random(seed * 7919)
    endpoints = [port.id for port in PORTS] + list(REMOTE_NAMES)
    for _ in range(PROBES_PER_SEED):
        source, destination = rng.sample(endpoints, 2)
        if source in REMOTE_NAMES and destination in REMOTE_NAMES:
            destination = rng.choice([port.id for port in PORTS])
        family = rng.choice((4, 4, 6))
        kind = rng.choice(("icmp", "tcp", "udp"))
        port_number = rng.choice(PROBE_PORTS)
        guide = an_ingress_rule_of(state, destination, rng)
        if guide is not None and rng.random() < 0.6:
            # Aim at what some rule allows, so that allowed traffic is well represented too.
            family = 4 if guide.ethertype == "IPv4" else 6
            kind = {"tcp": "tcp", "udp": "udp"}.get(guide.protocol or "", "icmp")
            if kind != "icmp" and guide.port_range_min is not None:
                port_number = guide.port_range_min
            source = a_source_for(state, guide, destination, family, rng) or source
        if kind == "icmp":
            observation = lab.ping(source, destination, family=family)
        elif kind == "tcp":
            observation = lab.tcp(source, destination, port_number, family=family)
        else:
            observation = lab.udp(source, destination, port_number, family=family)
        observation.description = f"seed {seed}: {observation.description}"
        intended = None
        if oracle.applies(state, source, destination):
            intended = oracle.request_allowed(
                state,
                source,
                destination,
                lab._address(source, family),
                lab._address(destination, family),
                kind,
                None if kind == "icmp" else port_number,
                family,
            )
        observation.assert_agrees(intended)
