"""Issue 11, items 1-5, each proved on a real kernel: what the kernel does is what the tracer says.

1. Ports of two networks on one host, no bridge named: every VM still gets its replies.
2. Packets conntrack never sees as NEW (unsolicited ICMP replies and errors, ICMPv6 1/3/129,
   UDP-Lite) are dropped as INVALID, and the tracer says so and why.
3. ICMPv6 type 255 is literal in ip6tables; IPv4's 255 is any type.
4. A request from a stateless port leaves no conntrack entry: on a shared bridge the stateful
   destination's TCP, ICMP and SCTP (INIT-ACK) replies are INVALID.
5. DHCP: only 0.0.0.0 -> 255.255.255.255 passes before the anti-spoofing check, unless the
   article's layout is asked for.

Probes are whole frames (tests/kernel/batch.py): every one is also held against the tracer,
answers and per-rule counters included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sgweb.firewall.model import (
    COMPAT_ARTICLE,
    HostState,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, Shape, remove_namespaces
from tests.kernel.batch import BatchProber, BatchResult, Outcome, Probe, probers_of_both_layouts
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import FirewallLab, build_lab
from tests.kernel.scenarios import make_two_network_ports

pytestmark = pytest.mark.kernel

PORTS = make_two_network_ports(4)  # alternating networks net-a and net-b
NET_A, NET_B, NET_A2, NET_B2 = (port.id for port in PORTS)
ICMP, ICMPV6, TCP, UDP, UDPLITE, SCTP = 1, 58, 6, 17, 136, 132


def _open_group(group_id: str, *, stateful: bool = True) -> SecurityGroup:
    """Everything in and out, both families."""
    rules = tuple(
        SecurityGroupRule(f"{group_id}-{direction}-{ethertype}", direction, ethertype)
        for direction in ("ingress", "egress")
        for ethertype in ("IPv4", "IPv6")
    )
    return SecurityGroup(group_id, group_id, stateful=stateful, rules=rules)


WEB = SecurityGroup(
    "web",
    "web",
    rules=(
        SecurityGroupRule("out4", "egress", "IPv4"),
        SecurityGroupRule("out6", "egress", "IPv6"),
        SecurityGroupRule("ping4", "ingress", "IPv4", "icmp"),
        SecurityGroupRule("ping6", "ingress", "IPv6", "ipv6-icmp"),
        SecurityGroupRule("ssh", "ingress", "IPv4", "tcp", 22, 22),
    ),
)


def _state(groups: tuple[SecurityGroup, ...], assignment: dict[str, tuple[str, ...]]) -> HostState:
    ports = tuple(replace(port, security_groups=assignment.get(port.id, ())) for port in PORTS)
    return HostState(ports=ports, security_groups=groups)


# -- 1. two networks, no bridge named: a real stack pings and connects ------------------------


@pytest.fixture(scope="module")
def hybrid_lab(kernel_runner: SubprocessRunner) -> Iterator[FirewallLab]:
    prefix = new_prefix()
    try:
        lab = build_lab(kernel_runner, prefix, PORTS, BRIDGE_PER_PORT)
        lab.bridge_hints = False  # what the control plane sends: no bridge names
        yield lab
    finally:
        remove_namespaces(prefix, kernel_runner)


def test_vms_of_two_networks_on_one_host_get_the_replies_of_what_they_open(
    hybrid_lab: FirewallLab,
) -> None:
    hybrid_lab.apply_fresh(_state((WEB,), {port.id: ("web",) for port in PORTS}))
    assert all(port.bridge is None for port in hybrid_lab.state.ports)
    hybrid_lab.settle()
    for source in (NET_A, NET_B):
        for family in (4, 6):
            hybrid_lab.ping(source, "outside", family=family).assert_agrees(True)
    hybrid_lab.ping(NET_B, NET_A, family=4).assert_agrees(True)
    hybrid_lab.ping(NET_A, NET_B2, family=6).assert_agrees(True)
    hybrid_lab.tcp(NET_B, NET_A, 22).assert_agrees(True)
    hybrid_lab.tcp("outside", NET_B, 22).assert_agrees(True)


# -- 2-5: whole-frame probes on silenced endpoints -------------------------------------------


@pytest.fixture(scope="module")
def probers(kernel_runner: SubprocessRunner) -> Iterator[dict[Shape, BatchProber]]:
    with probers_of_both_layouts(kernel_runner, PORTS, _state((), {})) as built:
        yield built


def _run(prober: BatchProber, state: HostState, probes: list[Probe]) -> BatchResult:
    prober.lab.apply_fresh(state)
    result = prober.run(probes)
    assert not result.problems(), "\n".join(result.problems())
    return result


def _by_description(result: BatchResult) -> dict[str, Outcome]:
    return {outcome.probe.describe(): outcome for outcome in result.outcomes}


UNSOLICITED = [
    (Probe("outside", NET_A, 4, ICMP, icmp_type=0), "an unsolicited echo reply"),
    (Probe("outside", NET_A, 4, ICMP, icmp_type=3, icmp_code=1), "destination unreachable"),
    (Probe("outside", NET_A, 4, ICMP, icmp_type=11), "time exceeded"),
    (Probe("outside", NET_A, 6, ICMPV6, icmp_type=1), "ICMPv6 destination unreachable"),
    (Probe("outside", NET_A, 6, ICMPV6, icmp_type=3), "ICMPv6 time exceeded"),
    (Probe("outside", NET_A, 6, ICMPV6, icmp_type=129), "an unsolicited ICMPv6 echo reply"),
    (Probe("outside", NET_A, 4, UDPLITE, dport=53), "UDP-Lite"),
    (Probe("outside", NET_A, 6, UDPLITE, dport=53), "UDP-Lite"),
    (Probe("outside", NET_A, 4, TCP, dport=22, tcp_flags="SYN,ACK"), "TCP SYN-ACK"),
]


@pytest.mark.parametrize("shape", (SHARED_BRIDGE, BRIDGE_PER_PORT))
def test_packets_conntrack_never_sees_as_new_are_dropped_as_invalid_and_explained(
    probers: dict[Shape, BatchProber], shape: Shape
) -> None:
    state = _state(
        (_open_group("open"), _open_group("loose", stateful=False)),
        {NET_A: ("open",), NET_B: ("loose",)},
    )
    to_stateless = [(replace(probe, destination=NET_B), words) for probe, words in UNSOLICITED]
    result = _run(probers[shape], state, [probe for probe, _words in UNSOLICITED + to_stateless])
    outcomes = _by_description(result)
    for probe, words in UNSOLICITED:
        outcome = outcomes[probe.describe()]
        assert not outcome.arrived, probe.describe()  # every rule would allow it
        assert "as INVALID by conntrack (conntrack" in outcome.explanation
        assert words in outcome.explanation
    # The same packets to a stateless port are untracked, and its rules let them in.
    assert all(outcomes[probe.describe()].arrived for probe, _words in to_stateless)


@pytest.mark.parametrize("shape", (SHARED_BRIDGE, BRIDGE_PER_PORT))
def test_icmpv6_type_255_is_literal_and_icmp_type_255_is_any_type(
    probers: dict[Shape, BatchProber], shape: Shape
) -> None:
    rules = (
        SecurityGroupRule("v6-255", "ingress", "IPv6", "ipv6-icmp", 255),
        SecurityGroupRule("v4-255", "ingress", "IPv4", "icmp", 255),
        SecurityGroupRule("out4", "egress", "IPv4"),
        SecurityGroupRule("out6", "egress", "IPv6"),
    )
    state = _state(
        (SecurityGroup("g", rules=rules), SecurityGroup("s", stateful=False, rules=rules)),
        {NET_A: ("g",), NET_B: ("s",)},
    )
    echo6 = Probe("outside", NET_A, 6, ICMPV6, icmp_type=128)
    echo4 = Probe("outside", NET_A, 4, ICMP, icmp_type=8)
    literal = Probe("outside", NET_B, 6, ICMPV6, icmp_type=255)  # stateless: no conntrack
    other6 = Probe("outside", NET_B, 6, ICMPV6, icmp_type=200)
    outcomes = _by_description(_run(probers[shape], state, [echo6, echo4, literal, other6]))
    assert not outcomes[echo6.describe()].arrived
    assert "default drop" in outcomes[echo6.describe()].explanation
    assert outcomes[echo4.describe()].arrived and outcomes[echo4.describe()].answer_arrived
    assert outcomes[literal.describe()].arrived
    assert not outcomes[other6.describe()].arrived


@pytest.mark.parametrize(
    ("shape", "replies_pass"), ((SHARED_BRIDGE, False), (BRIDGE_PER_PORT, True))
)
def test_replies_to_a_request_from_a_stateless_port_depend_on_its_conntrack_entry(
    probers: dict[Shape, BatchProber], shape: Shape, replies_pass: bool
) -> None:
    """On a shared bridge the request passes netfilter once, untracked (the stateless port's
    notrack comes first), so the stateful port's TCP, ICMP and SCTP replies are INVALID. With a
    bridge per port the stateful port's own traversal tracks the request: replies pass."""
    state = _state(
        (_open_group("open"), _open_group("loose", stateful=False)),
        {NET_A: ("open",), NET_B: ("loose",)},
    )
    ping = Probe(NET_B, NET_A, 4, ICMP, icmp_type=8)
    ping6 = Probe(NET_B, NET_A, 6, ICMPV6, icmp_type=128)
    syn = Probe(NET_B, NET_A, 4, TCP, dport=22)
    init = Probe(NET_B, NET_A, 4, SCTP, dport=5000)  # answered by an INIT-ACK
    datagram = Probe(NET_B, NET_A, 4, UDP, dport=53)
    outcomes = _by_description(_run(probers[shape], state, [ping, ping6, syn, init, datagram]))
    for probe in (ping, syn, init):
        outcome = outcomes[probe.describe()]
        assert outcome.arrived and outcome.answer_arrived is replies_pass, probe.describe()
        if not replies_pass:
            assert "reply: dropped at port" in outcome.explanation
            assert "as INVALID by conntrack" in outcome.explanation
    # A UDP answer is a new flow of its own, which the open groups allow; ICMPv6 from a VM is
    # let out before the INVALID drop (Neutron's egress), so an echo reply leaves either way.
    assert outcomes[datagram.describe()].answer_arrived
    assert outcomes[ping6.describe()].answer_arrived


@pytest.mark.parametrize("shape", (SHARED_BRIDGE, BRIDGE_PER_PORT))
def test_only_a_dhcp_discover_passes_before_anti_spoofing_unless_the_article_layout_is_asked(
    probers: dict[Shape, BatchProber], shape: Shape
) -> None:
    state = _state((), {})  # no groups: only the fixed rules speak
    client = Probe(NET_A, "dhcp", 4, UDP, dport=67, sport=68, answer=False)
    discover = replace(client, src_address="0.0.0.0", dst_address="255.255.255.255")
    forged = replace(client, src_address="192.0.2.99")
    forged_mac = replace(client, src_mac="fa:16:3e:ff:00:99")
    probes = [client, discover, forged, forged_mac]
    prober = probers[shape]
    safe = _by_description(_run(prober, state, probes))
    article = _by_description(_run(prober, replace(state, compat=COMPAT_ARTICLE), probes))
    assert safe[client.describe()].arrived and article[client.describe()].arrived
    assert safe[discover.describe()].arrived and article[discover.describe()].arrived
    for probe in (forged, forged_mac):
        assert not safe[probe.describe()].arrived
        assert "by anti-spoofing" in safe[probe.describe()].explanation
        assert article[probe.describe()].arrived  # the hole the article's layout has
