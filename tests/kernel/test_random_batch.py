"""The random differential test, wide: over a thousand real probes, kernel against tracer.

Each seed loads a random firewall (every protocol and ICMP type the probes send, a third of the
groups stateless, some ports without port security, one stateless and one stateful port on the
two networks) on a host whose ports belong to two networks, in both bridge layouts: one bridge
shared by the host's ports (named to the compiler, the Linux-bridge way) and one bridge per
port with no bridge named at all (the hybrid way, what the control plane sends). Then a hundred
probes: ICMP types (requests, information requests, unsolicited replies, errors, 255), ICMPv6
types (errors 1-4, echo 128 and 129, MLD 130 and 143, neighbour solicitation 135, node
information 139, 200, 255), TCP SYNs and stray segments (SYN-ACK, ACK, RST, FIN), UDP,
UDP-Lite, SCTP INITs, DCCP Requests, GRE and protocol 253: every tracker conntrack has (TCP,
UDP, UDP-Lite, SCTP, ICMP, ICMPv6, and the by-address one for the rest). They go from ports
and from outside, some with forged sources or MACs, some from the stateless port to the
stateful one. Every probe that arrives is answered when its kind has an answer. Each verdict,
each answer's verdict, and the per-rule counters of the whole batch must be what the tracer
says. A failure names the seed and the probe.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from sgweb.firewall.model import HostState, SecurityGroupRule
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, Shape
from tests.kernel import frames
from tests.kernel.batch import (
    PROTOCOL_NAMES,
    BatchProber,
    Outcome,
    Probe,
    probers_of_both_layouts,
)
from tests.kernel.harness import FirewallLab
from tests.kernel.scenarios import (
    PROBE_PORTS,
    REMOTE_ADDRESSES,
    a_source_for,
    an_ingress_rule_of,
    make_two_network_ports,
    members_of,
    random_state,
)

pytestmark = pytest.mark.kernel

PORTS = make_two_network_ports(5)
SEEDS = range(6)
PROBES_PER_SEED = 100
ICMP_TYPES = {
    4: (8, 8, 8, 0, 3, 5, 11, 12, 13, 15, 17, 255),
    6: (128, 128, 128, 129, 1, 2, 3, 4, 130, 135, 139, 143, 200, 255),
}
KINDS = ("icmp", "icmp", "tcp", "tcp", "udp", "udp", "udplite", "raw", "stray", "sctp", "dccp",
         "gre")  # fmt: skip
PROTOCOL_NUMBERS = {
    "tcp": 6, "udp": 17, "udplite": 136, "raw": 253, "stray": 6, "sctp": 132, "dccp": 33,
    "gre": 47,
}  # fmt: skip
WITHOUT_PORTS = ("icmp", "raw", "gre")
# TCP segments of no connection: conntrack opens one only for a SYN, or a bare ACK it picks up
# mid-stream (nf_conntrack_tcp_loose); the rest are INVALID.
STRAY_TCP_FLAGS = ("SYN,ACK", "ACK", "PSH,ACK", "RST", "RST,ACK", "FIN,ACK", "SYN,FIN")
UDPLITE = 136


@pytest.fixture(scope="module")
def probers(kernel_runner: SubprocessRunner) -> Iterator[dict[Shape, BatchProber]]:
    with probers_of_both_layouts(kernel_runner, PORTS, random_state(0, PORTS)) as built:
        yield built


@pytest.mark.parametrize("shape", (SHARED_BRIDGE, BRIDGE_PER_PORT))
def test_over_a_thousand_random_probes_agree_with_the_tracer_verdict_by_verdict(
    probers: dict[Shape, BatchProber], shape: Shape
) -> None:
    prober = probers[shape]
    started = time.monotonic()
    probes = packets = 0
    seen: Counter[str] = Counter()
    for seed in SEEDS:
        state = random_state(seed, PORTS, groups=4, max_rules=8, wide=True, stateless_chance=0.35)
        state = with_a_stateless_and_a_stateful_port(state, random.Random(seed))
        prober.lab.apply_fresh(state)
        rng = random.Random(seed * 104729)
        batch = [random_probe(prober.lab, state, rng) for _ in range(PROBES_PER_SEED)]
        result = prober.run(batch)
        problems = result.problems() + broken_promises(state, result.outcomes)
        assert not problems, f"{shape} seed {seed}: " + "\n".join(problems[:10])
        probes += len(result.outcomes)
        packets += result.packets
        seen.update(label for o in result.outcomes for label in classes_of(state, o))
    elapsed = time.monotonic() - started
    # The figures the issue asks for (run with -s to see them).
    print(f"\n{shape}: {probes} probes, {packets} packets judged, no disagreement, {elapsed:.1f} s")
    print("  " + ", ".join(f"{label} {count}" for label, count in sorted(seen.items())))
    assert probes >= 500  # two layouts: over a thousand probes in all
    # Every class the outside prober found is really sent, and some of it really passes.
    assert not [label for label in COVERED if not seen[label]], seen


# The kinds of traffic the batch must hold (issue 11's classes), as classes_of labels them.
COVERED = (
    "across networks", "across networks answered", "stateless to stateful, answer sent",
    "stateless to stateful, tcp or icmp answer sent",
    "icmp error", "icmpv6 error", "icmpv6 type 255", "icmp unsolicited reply", "udplite",
    "sctp answered", "dccp answered", "gre answered", "tcp not a syn", "forged",
)  # fmt: skip


def classes_of(state: HostState, outcome: Outcome) -> list[str]:
    """What a probe was, in the words of COVERED (a probe may be several things)."""
    probe = outcome.probe
    labels = []
    networks = {port.id: port.network_id for port in state.ports}
    source, destination = networks.get(probe.source), networks.get(probe.destination)
    if source and destination and source != destination:
        labels.append("across networks")
        if outcome.answer_arrived:
            labels.append("across networks answered")
    stateless_source = _guarded(state, probe.source, stateful=False)
    answered = outcome.answer_arrived is not None
    if answered and stateless_source and _guarded(state, probe.destination, stateful=True):
        # Class 4: the answer of a TCP or ICMP request is where the tracer once went wrong.
        labels.append("stateless to stateful, answer sent")
        if probe.protocol in (frames.TCP, 1, 58):
            labels.append("stateless to stateful, tcp or icmp answer sent")
    name = PROTOCOL_NAMES.get(probe.protocol)
    if probe.is_icmp:
        errors = range(128) if probe.family == 6 else (3, 4, 5, 11, 12)
        kind = "icmpv6" if probe.family == 6 else "icmp"
        if probe.icmp_type in errors:
            labels.append(f"{kind} error")
        if probe.icmp_type in (0, 14, 16, 18, 129, 140):
            labels.append("icmp unsolicited reply")
        if probe.icmp_type == 255 and probe.family == 6:
            labels.append("icmpv6 type 255")
    elif name in ("sctp", "dccp", "gre") and outcome.answer_arrived:
        labels.append(f"{name} answered")
    elif name == "udplite":
        labels.append("udplite")
    elif name == "tcp" and probe.tcp_flags != "SYN":
        labels.append("tcp not a syn")
    if probe.src_address or probe.src_mac:
        labels.append("forged")
    return labels


def broken_promises(state: HostState, outcomes: list[Outcome]) -> list[str]:
    """Tracer and kernel may agree and both be wrong: between stateful ports (or a stateful
    port and the outside), whatever the kernel lets in is answered, whatever the networks."""
    broken = []
    for outcome in outcomes:
        probe = outcome.probe
        if outcome.answer_arrived is not False or probe.src_address or probe.src_mac:
            continue
        if probe.protocol == UDPLITE:
            continue  # conntrack refuses UDP-Lite on these kernels (tests/kernel/test_truth.py)
        if all(_stateful_or_outside(state, end) for end in (probe.source, probe.destination)):
            broken.append(f"{probe.describe()}: got in, but its answer was dropped")
    return broken


def _stateful_or_outside(state: HostState, endpoint: str) -> bool:
    port = next((p for p in state.ports if p.id == endpoint), None)
    if port is None or not port.port_security_enabled or not port.security_groups:
        return True
    return any(g.stateful for g in state.security_groups if g.id in port.security_groups)


def _guarded(state: HostState, endpoint: str, *, stateful: bool) -> bool:
    """Whether the endpoint is a port whose groups filter it, and are stateful (or not)."""
    port = next((p for p in state.ports if p.id == endpoint), None)
    if port is None or not port.port_security_enabled or not port.security_groups:
        return False
    return _stateful_or_outside(state, endpoint) is stateful


STATELESS_PORT, STATEFUL_PORT = PORTS[0].id, PORTS[1].id  # on the two networks
PAIR_SHARE = 0.15  # of the probes go from the stateless port to the stateful one


def with_a_stateless_and_a_stateful_port(state: HostState, rng: random.Random) -> HostState:
    """The state with STATELESS_PORT filtered by stateless groups only and STATEFUL_PORT by
    stateful ones only, so that every seed holds stateless-to-stateful pairs (left to chance,
    most seeds had none). Stateless groups get the egress rules Neutron gives a new group, so
    the stateless port's requests leave it."""
    groups = list(state.security_groups)
    if not any(not g.stateful for g in groups):
        flip = rng.randrange(len(groups))
        groups[flip] = replace(groups[flip], stateful=False)
    if all(not g.stateful for g in groups):
        groups[0] = replace(groups[0], stateful=True)
    groups = [
        g if g.stateful else replace(g, rules=(*g.rules, *_default_egress(g.id))) for g in groups
    ]
    stateless = rng.choice([g.id for g in groups if not g.stateful])
    # The stateful port takes the stateful group with the most ingress rules, so that some
    # of the stateless port's requests get in and are answered.
    stateful = max(
        (g for g in groups if g.stateful),
        key=lambda g: (sum(rule.direction == "ingress" for rule in g.rules), rng.random()),
    ).id
    chosen = {STATELESS_PORT: (stateless,), STATEFUL_PORT: (stateful,)}
    ports = tuple(
        replace(port, security_groups=chosen[port.id], port_security_enabled=True)
        if port.id in chosen
        else port
        for port in state.ports
    )
    return replace(
        state,
        ports=ports,
        security_groups=tuple(groups),
        remote_group_members=members_of(tuple(groups), ports),
    )


def _default_egress(group_id: str) -> tuple[SecurityGroupRule, ...]:
    return tuple(
        SecurityGroupRule(f"{group_id[:8]}-egress-{ethertype}", "egress", ethertype)
        for ethertype in ("IPv4", "IPv6")
    )


def random_probe(lab: FirewallLab, state: HostState, rng: random.Random) -> Probe:
    endpoints = [port.id for port in PORTS] + list(REMOTE_ADDRESSES)
    source, destination = rng.sample(endpoints, 2)
    if source in REMOTE_ADDRESSES and destination in REMOTE_ADDRESSES:
        destination = rng.choice([port.id for port in PORTS])
    pair = rng.random() < PAIR_SHARE
    if pair:
        source, destination = STATELESS_PORT, STATEFUL_PORT
    family = rng.choice((4, 4, 6))
    kind = rng.choice(KINDS)
    dport = rng.choice(PROBE_PORTS)
    icmp_type = rng.choice(ICMP_TYPES[family])
    guide = an_ingress_rule_of(state, destination, rng)
    if guide is not None and (pair or rng.random() < 0.6):
        # Aim at what some rule allows, so that allowed traffic is well represented too.
        family = 4 if guide.ethertype == "IPv4" else 6
        kind = _kind_of(guide.protocol, rng)
        if guide.port_range_min is not None:
            if kind == "icmp":
                icmp_type = guide.port_range_min
            else:
                dport = guide.port_range_min
        if not pair:
            source = a_source_for(state, guide, destination, family, rng) or source
    protocol = (1 if family == 4 else 58) if kind == "icmp" else PROTOCOL_NUMBERS[kind]
    forged_address = forged_mac = None
    if source not in REMOTE_ADDRESSES and rng.random() < 0.12:
        if rng.random() < 0.6:
            forged_address = "192.0.2.99" if family == 4 else "2001:db8::99"
        else:
            forged_mac = f"fa:16:3e:ff:{rng.randrange(256):02x}:{rng.randrange(256):02x}"
    return Probe(
        source,
        destination,
        family,
        protocol,
        dport=dport if kind not in WITHOUT_PORTS else 0,
        icmp_type=icmp_type,
        tcp_flags=rng.choice(STRAY_TCP_FLAGS) if kind == "stray" else "SYN",
        src_address=forged_address,
        src_mac=forged_mac,
    )


def _kind_of(protocol: str | None, rng: random.Random) -> str:
    if protocol in ("icmp", "ipv6-icmp"):
        return "icmp"
    if protocol == "253":
        return "raw"
    if protocol in ("tcp", "udp", "udplite", "sctp", "dccp", "gre"):
        return protocol
    return rng.choice(KINDS)
