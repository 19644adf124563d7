"""Without a kernel: the tracer's verdict on the compiled rules against the oracle's reading of
the security groups themselves, over many seeded random hosts. The kernel tier proves tracer ==
kernel; this proves compiler == intent, cheaply and for far more cases."""

from __future__ import annotations

import random
from dataclasses import replace

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import ACCEPT
from sgweb.firewall.model import EGRESS, IPV4, IPV6, HostState, SecurityGroup, SecurityGroupRule
from sgweb.firewall.trace.flow import LAYOUT_SHARED, trace_flow
from tests.kernel import oracle
from tests.kernel.scenarios import PROBE_PORTS, make_ports, random_state

REMOTES = {"outside": ("198.51.100.7", "2001:db8:1::7"), "other": ("203.0.113.9", "2001:db8:2::9")}
PORTS = make_ports(5)
SEEDS = 400


def _address(state: HostState, endpoint: str, family: int) -> str:
    if endpoint in REMOTES:
        return REMOTES[endpoint][0 if family == 4 else 1]
    port = next(p for p in state.ports if p.id == endpoint)
    return next(a for a in port.fixed_ips if (":" in a) == (family == 6))


def disagreements(state: HostState, seed: int, probes: int = 25) -> list[str]:
    compiled = compile_host(state)
    rng = random.Random(seed)
    endpoints = [p.id for p in state.ports] + list(REMOTES)
    found = []
    for _ in range(probes):
        source, destination = rng.sample(endpoints, 2)
        if source in REMOTES and destination in REMOTES:
            continue
        if not oracle.applies(state, source, destination):
            continue
        family = rng.choice((4, 6))
        kind = rng.choice(("icmp", "tcp", "udp"))
        dport = None if kind == "icmp" else rng.choice(PROBE_PORTS)
        src = source if source not in REMOTES else _address(state, source, family)
        source_address = _address(state, source, family)
        forged = None
        if source not in REMOTES and rng.random() < 0.2:
            # a forged address, or one of an allowed address pair
            forged = rng.choice(("192.0.2.222", "2001:db8::dead", "192.0.2.200", "192.0.2.201"))
            if (":" in forged) != (family == 6):
                forged = None
            else:
                source_address = forged
        dst = destination if destination not in REMOTES else _address(state, destination, family)
        protocol = {"icmp": "icmp" if family == 4 else "ipv6-icmp"}.get(kind, kind)
        flow = trace_flow(
            {"h": (state, compiled)}, src, dst, family=family, layout=LAYOUT_SHARED,
            uplink="sgup0", protocol=protocol, sport=None if kind == "icmp" else 45000,
            dport=dport, src_address=forged,
        )  # fmt: skip
        intended = oracle.request_allowed(
            state, source, destination, source_address,
            _address(state, destination, family), kind, dport, family,
        )  # fmt: skip
        if (flow.verdict == ACCEPT) != intended:
            found.append(
                f"seed {seed}: {kind}/{dport} IPv{family} {source} ({source_address}) -> "
                f"{destination}: groups say "
                f"{'allow' if intended else 'drop'}, compiled rules {flow.verdict} ({flow.text})"
            )
    return found


def test_compiled_rules_do_what_the_security_groups_say() -> None:
    failures: list[str] = []
    checked = 0
    for seed in range(SEEDS):
        state = random_state(seed, PORTS, groups=3, max_rules=8)
        checked += 1
        failures += disagreements(state, seed)
    assert checked == SEEDS
    assert not failures, "\n".join(failures[:10]) + f"\n({len(failures)} in all)"


def test_rules_that_differ_only_in_ethertype_both_take_effect() -> None:
    """IPv6 'any' / 'tcp' egress listed before the same IPv4 rule: both must be compiled (a
    compiler match cache once took the second for a duplicate)."""
    egress = [
        SecurityGroupRule(f"twin-{protocol}-{family}", EGRESS, ethertype, protocol)
        for protocol in (None, "tcp")
        for family, ethertype in (("v6", IPV6), ("v4", IPV4))
    ]
    group = SecurityGroup("e0e0e0e0-5555-4555-8555-000000000005", "twins", rules=tuple(egress))
    state = random_state(1, PORTS)
    state = replace(
        state,
        ports=tuple(
            replace(p, security_groups=(group.id,), port_security_enabled=True) for p in state.ports
        ),
        security_groups=(group,),
        remote_group_members=(),
    )
    failures: list[str] = []
    for seed in range(40):
        failures += disagreements(state, seed)
    assert not failures, "\n".join(failures[:5])
