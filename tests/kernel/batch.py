"""Many probes at once: whole frames on raw sockets, the tracer's flow for each, and counters.

`BatchProber` sends a batch of request frames from their source endpoints, sees which arrived
where they were sent, answers the arrived ones from their destinations (an echo reply for an
echo request, a SYN-ACK for a SYN, an INIT-ACK for an SCTP INIT, a DCCP-Response for a
Request, a datagram back for UDP, UDP-Lite and other protocols), sees
which answers arrived, and holds every verdict against `trace_flow` with the reply traced.
Every probe of a batch has its own tag, ports and ICMP id, so no two share a conntrack entry,
and the endpoints' own stacks are silent, so the per-rule counters of the whole batch must
equal the sum of the tracer's predicted hits: each rule hit once per traversal it predicts.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter as Multiset
from collections.abc import Iterator
from dataclasses import dataclass, replace

from sgweb.firewall.ir import ACCEPT
from sgweb.firewall.model import HostState, Port
from sgweb.firewall.trace.flow import Flow
from sgweb.kernel.runner import SubprocessRunner
from sgweb.kernel.topology import BRIDGE_PER_PORT, SHARED_BRIDGE, Shape, remove_namespaces
from tests.kernel import frames, wires
from tests.kernel.conftest import new_prefix
from tests.kernel.harness import REMOTES, FirewallLab, HitKey, _delta, _flow_hits, build_lab

PROTOCOL_NAMES = {
    1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 136: "udplite", 132: "sctp", 33: "dccp",
    47: "gre",
}  # fmt: skip
# Requests conntrack pairs with an answer (the tracer's flow uses the same pairs).
ICMP_ANSWER = {4: {8: 0, 13: 14, 15: 16, 17: 18}, 6: {128: 129, 139: 140}}


@dataclass(frozen=True, slots=True)
class Probe:
    source: str  # a port id or a remote's name
    destination: str
    family: int
    protocol: int
    dport: int = 0
    icmp_type: int = 8
    icmp_code: int = 0
    tcp_flags: str = "SYN"
    src_address: str | None = None  # a forged source address
    src_mac: str | None = None  # a forged source MAC
    dst_address: str | None = None  # e.g. a broadcast; the frame still goes to `destination`
    answer: bool = True  # answer it if it arrives and is a kind that gets answers
    sport: int | None = None  # None: one of its own, so that no two probes share a connection

    @property
    def is_icmp(self) -> bool:
        return self.protocol == frames.PROTO_ICMP[self.family]

    @property
    def answered(self) -> bool:
        """Whether a destination answers it (an ICMP error or reply is never answered)."""
        if not self.answer:
            return False
        if self.is_icmp:
            return self.icmp_type in ICMP_ANSWER[self.family]
        if self.protocol == frames.TCP:
            return self.tcp_flags == "SYN"
        return True

    def describe(self) -> str:
        what = PROTOCOL_NAMES.get(self.protocol, f"protocol {self.protocol}")
        if self.is_icmp:
            what += f" type {self.icmp_type}/{self.icmp_code}"
        elif self.protocol == frames.TCP:
            what += f" {self.tcp_flags} to {self.dport}"
        elif self.dport:
            what += f" to {self.dport}"
        forged = ""
        if self.src_address or self.src_mac:
            forged = f" from {self.src_address or ''} {self.src_mac or ''}".rstrip()
        return f"{what} {self.source} -> {self.destination} IPv{self.family}{forged}"


@dataclass
class Outcome:
    probe: Probe
    flow: Flow
    arrived: bool  # the kernel let the request through
    answer_arrived: bool | None  # None: no answer was sent

    @property
    def tracer_arrived(self) -> bool:
        return self.flow.verdict == ACCEPT

    @property
    def tracer_answer(self) -> bool | None:
        if self.answer_arrived is None or self.flow.reply_verdict is None:
            return None
        return self.flow.reply_verdict == ACCEPT

    @property
    def explanation(self) -> str:
        return self.flow.text

    def disagreement(self) -> str | None:
        if self.arrived != self.tracer_arrived:
            return (
                f"{self.probe.describe()}: kernel {'passed' if self.arrived else 'dropped'} "
                f"the request, tracer: {self.flow.text}"
            )
        if self.answer_arrived is not None and self.answer_arrived != self.tracer_answer:
            return (
                f"{self.probe.describe()}: kernel {'passed' if self.answer_arrived else 'dropped'}"
                f" the answer, tracer: {self.flow.text}"
            )
        return None


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    kernel_hits: Multiset[HitKey]
    tracer_hits: Multiset[HitKey]

    @property
    def packets(self) -> int:
        """Real packets judged: requests plus answers sent."""
        return sum(1 + (o.answer_arrived is not None) for o in self.outcomes)

    def problems(self) -> list[str]:
        found = [text for o in self.outcomes if (text := o.disagreement()) is not None]
        if not found and self.kernel_hits != self.tracer_hits:
            only_kernel = dict(self.kernel_hits - self.tracer_hits)
            only_tracer = dict(self.tracer_hits - self.kernel_hits)
            found.append(
                f"counters differ: only the kernel counted {only_kernel}, "
                f"only the tracer predicted {only_tracer}"
            )
        return found


class BatchProber:
    def __init__(self, lab: FirewallLab) -> None:
        self.lab = lab
        namespaces = {label: lab.topology.ns(label) for label in lab.labels.values()}
        namespaces.update({remote.name: lab.topology.ns(remote.name) for remote in REMOTES})
        for netns in namespaces.values():
            wires.silence(lab.runner, netns)
        self.wires = wires.Wires(namespaces)
        self._tags = itertools.count(1)
        self._ports = itertools.count(20000)

    def close(self) -> None:
        self.wires.close()

    # -- endpoints ------------------------------------------------------------------------

    def _label(self, endpoint: str) -> str:
        return self.lab._endpoint_label(endpoint)

    def _mac(self, endpoint: str) -> str:
        for port in self.lab.state.ports:
            if port.id == endpoint:
                return port.mac_address
        return next(r.mac for r in REMOTES if r.name == endpoint)

    # -- one batch ------------------------------------------------------------------------

    def run(self, probes: list[Probe]) -> BatchResult:
        """All probes, in as few rounds as keep their conntrack entries apart."""
        total = BatchResult([], Multiset(), Multiset())
        for round_ in _rounds(probes, self.lab):
            result = self._round(round_)
            total.outcomes.extend(result.outcomes)
            total.kernel_hits.update(result.kernel_hits)
            total.tracer_hits.update(result.tracer_hits)
        return total

    def _round(self, probes: list[Probe]) -> BatchResult:
        lab = self.lab
        lab.runner.run(["conntrack", "-F"], netns=lab.host_ns, check=False)
        before = {family: lab.firewall.read_counters(family) for family in (4, 6)}
        self.wires.drain()
        specs = [self._request(probe) for probe in probes]
        for probe, spec in zip(probes, specs, strict=True):
            self.wires.send(self._label(probe.source), frames.build(spec))
        arrived = self._arrivals(probes, specs, answer=False)
        answers = {}
        for index, (probe, spec) in enumerate(zip(probes, specs, strict=True)):
            if arrived[index] and probe.answered:
                answers[index] = _answer(spec, probe)
                self.wires.send(self._label(probe.destination), frames.build(answers[index]))
        answered = self._arrivals(probes, answers, answer=True) if answers else {}
        after = {family: lab.firewall.read_counters(family) for family in (4, 6)}
        kernel_hits: Multiset[HitKey] = Multiset()
        for family in (4, 6):
            delta = _delta(before[family], after[family])
            kernel_hits.update({(f"v{family}", *key): n for key, n in delta.items()})
        outcomes = []
        tracer_hits: Multiset[HitKey] = Multiset()
        for index, (probe, spec) in enumerate(zip(probes, specs, strict=True)):
            flow = self._flow(probe, spec, reply=index in answers)
            outcome = Outcome(probe, flow, arrived[index], answered.get(index))
            outcomes.append(outcome)
            hits = _flow_hits(flow, with_reply=index in answers)
            tracer_hits.update({(f"v{probe.family}", *key): n for key, n in hits.items()})
        return BatchResult(outcomes, kernel_hits, tracer_hits)

    def _request(self, probe: Probe) -> frames.FrameSpec:
        tag = next(self._tags)
        source = probe.src_address or self.lab._address(probe.source, probe.family)
        return frames.FrameSpec(
            tag=tag,
            family=probe.family,
            src_mac=probe.src_mac or self._mac(probe.source),
            dst_mac=self._mac(probe.destination),
            src=source,
            dst=probe.dst_address or self.lab._address(probe.destination, probe.family),
            protocol=probe.protocol,
            sport=probe.sport if probe.sport is not None else next(self._ports),
            dport=probe.dport,
            icmp_type=probe.icmp_type,
            icmp_code=probe.icmp_code,
            icmp_id=tag & 0xFFFF,
            tcp_flags=probe.tcp_flags,
        )

    def _arrivals(self, probes: list[Probe], specs, *, answer: bool) -> dict[int, bool]:
        """index -> whether the frame reached the endpoint it was sent to."""
        received = self.wires.collect(quiet_for=0.25)
        seen: dict[int, set[str]] = {}
        for label, got in received.items():
            for frame in got:
                for tag in frames.tags_in(frame):
                    seen.setdefault(tag, set()).add(label)
        result = {}
        items = specs.items() if isinstance(specs, dict) else enumerate(specs)
        for index, spec in items:
            probe = probes[index]
            target = probe.source if answer else probe.destination
            result[index] = self._label(target) in seen.get(spec.tag, set())
        return result

    def _flow(self, probe: Probe, spec: frames.FrameSpec, *, reply: bool) -> Flow:
        protocol = PROTOCOL_NAMES.get(probe.protocol, str(probe.protocol))
        icmp = probe.is_icmp
        return self.lab._trace_flow(
            probe.source,
            probe.dst_address or probe.destination,
            probe.family,
            protocol=protocol,
            sport=None if icmp else spec.sport,
            dport=None if icmp else spec.dport,
            icmp_type=probe.icmp_type if icmp else None,
            icmp_code=probe.icmp_code if icmp else None,
            src_address=probe.src_address,
            src_mac=probe.src_mac,
            tcp_flags=probe.tcp_flags if probe.protocol == frames.TCP else None,
            reply=reply,
        )


# DCCP is left out: kernels since 6.16 have no DCCP conntrack and track it by addresses alone.
_PORTED = {frames.TCP, frames.UDP, frames.UDPLITE, frames.SCTP, 1, 58}


def _rounds(probes: list[Probe], lab: FirewallLab) -> list[list[Probe]]:
    """Conntrack tracks other protocols by their two addresses alone: a second probe between
    the same two endpoints (either way) would find the first one's entry, so it goes to a
    later round (rounds flush conntrack)."""
    rounds: list[tuple[list[Probe], set[tuple[object, ...]]]] = []
    for probe in probes:
        key: tuple[object, ...] | None = None
        if probe.protocol not in _PORTED:
            source = probe.src_address or lab._address(probe.source, probe.family)
            destination = probe.dst_address or lab._address(probe.destination, probe.family)
            key = (probe.family, probe.protocol, frozenset((source, destination)))
        for members, keys in rounds:
            if key is None or key not in keys:
                members.append(probe)
                if key is not None:
                    keys.add(key)
                break
        else:
            rounds.append(([probe], {key} if key is not None else set()))
    return [members for members, _keys in rounds]


def _answer(spec: frames.FrameSpec, probe: Probe) -> frames.FrameSpec:
    """The destination's answer: everything swapped, the ICMP answer type, a SYN-ACK."""
    icmp_type = ICMP_ANSWER[spec.family].get(spec.icmp_type, spec.icmp_type)
    return replace(
        spec,
        tag=spec.tag + 50_000_000,
        src_mac=spec.dst_mac,
        dst_mac=spec.src_mac,
        src=spec.dst,
        dst=spec.src,
        sport=spec.dport,
        dport=spec.sport,
        icmp_type=icmp_type if probe.is_icmp else spec.icmp_type,
        tcp_flags="SYN,ACK",
        answer=True,
    )


@contextlib.contextmanager
def probers_of_both_layouts(
    runner: SubprocessRunner, ports: tuple[Port, ...], state: HostState
) -> Iterator[dict[Shape, BatchProber]]:
    """A lab of `ports` in each bridge layout (the shared bridge named to the compiler, bridges
    per port not), loaded with `state`, each with its prober; all removed afterwards, also
    when a test fails."""
    prefixes = []
    built: dict[Shape, BatchProber] = {}
    try:
        for shape in (SHARED_BRIDGE, BRIDGE_PER_PORT):
            prefixes.append(new_prefix())
            lab = build_lab(runner, prefixes[-1], ports, shape)
            lab.bridge_hints = shape == SHARED_BRIDGE
            lab.apply_fresh(state)
            built[shape] = BatchProber(lab)
        yield built
    finally:
        for prober in built.values():
            prober.close()
        for prefix in prefixes:
            remove_namespaces(prefix, runner)
