"""The kernel's own per-packet path (TRACE + xtables-monitor) equals the tracer's, rule by rule
and in order, for each traversal of the host's netfilter."""

from __future__ import annotations

import pytest

from sgweb.firewall.ir import BUILTIN_CHAINS
from sgweb.firewall.trace.flow import Flow
from sgweb.kernel.flowtrace import FlowTracer
from sgweb.kernel.ktrace import KernelPacket, KernelTracer, parse_monitor_output
from tests.kernel.harness import FirewallLab

# The same lab, built once per bridge layout for this module.
from tests.kernel.test_firewall_e2e import BARE_PORT, DB_PORT, OPEN_PORT, WEB_PORT, lab  # noqa: F401

W, D, B, OPEN = WEB_PORT.id, DB_PORT.id, BARE_PORT.id, OPEN_PORT.id

SAMPLE = """\
PACKET: 2 0d384ccc IN=brq-sgweb MACSRC=fa:16:3e:ee:0:7 SRC=198.51.100.7 DST=192.0.2.11 LEN=84
 TRACE: 2 0d384ccc raw:PREROUTING:rule:0x8:CONTINUE  -4 -t raw -A PREROUTING -p icmp -j TRACE
 TRACE: 2 0d384ccc raw:PREROUTING:policy:ACCEPT
PACKET: 2 0d384ccc IN=brq-sgweb OUT=brq-sgweb SRC=198.51.100.7 DST=192.0.2.11 LEN=84
 TRACE: 2 0d384ccc filter:FORWARD:rule:0x15:JUMP:neutron-openvswi-FORWARD  -4 -t filter -A FORWARD -j neutron-openvswi-FORWARD
 TRACE: 2 0d384ccc filter:neutron-openvswi-i11111111-a:rule:0x2b:0xfffffffb  -4 -t filter -A neutron-openvswi-i11111111-a -p icmp -j RETURN
 TRACE: 2 0d384ccc filter:neutron-openvswi-sg-chain:rule:0x59:ACCEPT  -4 -t filter -A neutron-openvswi-sg-chain -j ACCEPT
PACKET: 2 0d384ccc IN=qbr1 SRC=198.51.100.7 DST=192.0.2.11 LEN=84
 TRACE: 2 0d384ccc raw:PREROUTING:policy:ACCEPT
"""  # noqa: E501


def test_monitor_output_is_parsed_into_traversals_with_verdicts() -> None:
    packets = parse_monitor_output(SAMPLE)
    assert len(packets) == 2  # the same id entering PREROUTING again is a new traversal
    first = packets[0]
    assert (first.family, first.src, first.dst, first.verdict) == (
        4, "198.51.100.7", "192.0.2.11", "ACCEPT",
    )  # fmt: skip
    assert [s.verdict for s in first.matched()] == ["JUMP:neutron-openvswi-FORWARD", "RETURN",
                                                    "ACCEPT"]  # fmt: skip
    assert first.matched(include_trace_rule=True)[0].is_trace_rule


def _tracer_paths(flow: Flow) -> list[list[tuple[str, str, int | None]]]:
    paths = []
    for hop in (*flow.hops, *flow.reply_hops):
        if hop.trace is None:
            continue
        paths.append(
            [
                (hit.table, hit.chain, None if hit.chain in BUILTIN_CHAINS else hit.position)
                for hit in hop.trace.matched
            ]
        )
    return paths


def _kernel_paths(packets: list[KernelPacket]) -> list[list[tuple[str, str, int | None]]]:
    return [
        [
            (step.table, step.chain, None if step.chain in BUILTIN_CHAINS else step.position)
            for step in packet.matched()
        ]
        for packet in packets
    ]


# What each probe must do (from the lab's groups, see test_firewall_e2e): without it, a kernel
# and a tracer that were wrong the same way (both dropping everything) would agree and pass.
ALLOWED = {
    ("outside", W, 4, None): True,
    ("outside", D, 4, None): False,
    (D, W, 4, None): True,
    (D, "outside", 4, "192.0.2.97"): False,
    ("outside", W, 6, None): True,
    ("outside", OPEN, 4, None): True,
    (W, "outside", 6, None): True,  # Neutron's egress base lets every ICMPv6 out (but RA)
}


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("source", "destination", "family", "src_address"),
    [
        ("outside", W, 4, None),  # allowed, reply established
        ("outside", D, 4, None),  # default drop
        (D, W, 4, None),
        (D, "outside", 4, "192.0.2.97"),  # anti-spoofing
        ("outside", W, 6, None),
        ("outside", OPEN, 4, None),  # port security off
        (W, "outside", 6, None),
    ],
)
def test_the_kernels_path_for_each_packet_is_the_tracers_path(
    lab: FirewallLab,  # noqa: F811
    source: str,
    destination: str,
    family: int,
    src_address: str | None,
) -> None:
    protocol = "icmp" if family == 4 else "ipv6-icmp"
    vm = lab.labels.get(source)
    if src_address is not None and vm is not None:
        lab.topology.run_in(vm, ["ip", "addr", "add", f"{src_address}/32", "dev", "eth0"])
    try:
        with KernelTracer(lab.runner, lab.host_ns, match=["-p", protocol], families=[family]) as kt:
            observation = lab.ping(source, destination, family=family, src_address=src_address)
    finally:
        if src_address is not None and vm is not None:
            lab.topology.run_in(vm, ["ip", "addr", "del", f"{src_address}/32", "dev", "eth0"])
    observation.compare_counters = False  # the TRACE rule itself sits in raw PREROUTING now
    observation.assert_agrees(ALLOWED[(source, destination, family, src_address)])
    kernel = [p for p in kt.packets if p.family == family]
    assert _kernel_paths(kernel) == _tracer_paths(observation.flow)
    decided = [p.verdict for p in kernel]
    assert ("DROP" in decided) == (not observation.kernel_ok)


@pytest.mark.kernel
def test_every_traversal_of_an_allowed_tcp_connection_is_traced_with_its_verdict_each_time(
    lab: FirewallLab,  # noqa: F811
) -> None:
    # The agent's proof of an allowed TCP connection: a TRACE rule per direction, one monitor.
    # Each probe is a burst of trace events (SYN to close, every packet on each bridge it
    # crosses); a monitor that fell behind used to lose the end of it (see test_trace_complete).
    web, db = WEB_PORT.fixed_ips[0], DB_PORT.fixed_ips[0]
    for attempt in range(5):
        tracer = FlowTracer(lab.runner, lab.host_ns, families=(4,), matches=[
            ["-s", web, "-d", db, "-p", "tcp"], ["-s", db, "-d", web, "-p", "tcp"],
        ])  # fmt: skip
        tracer.start()
        try:
            lab.tcp(W, D, 5432).assert_agrees(True)
        finally:
            packets = tracer.stop(linger_s=0.3)
        assert tracer.lost is None, f"attempt {attempt}: {tracer.lost}"
        directions = {(packet.src, packet.dst) for packet in packets}
        assert directions == {(web, db), (db, web)}, f"attempt {attempt}: {directions}"
        undecided = [packet for packet in packets if packet.verdict != "ACCEPT"]
        assert not undecided, f"attempt {attempt}: {len(undecided)} of {len(packets)} undecided"
