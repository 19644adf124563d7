"""A compiled host in a real namespace, real probes, and the tracer's account of each probe.

`FirewallLab.probe_*` sends one packet (plus its reply, if any), reads the per-rule counters of
the host namespace before and after, asks the tracer (via `trace_flow`) what should have
happened, and returns both sides so a test can assert they agree: same verdict, and exactly the
rules the tracer says matched are the ones whose kernel counters went up, by the same amount.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections import Counter as Multiset
from dataclasses import dataclass, field, replace

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import ACCEPT, CompiledHost
from sgweb.firewall.model import HostState, Port
from sgweb.firewall.trace.flow import LAYOUT_QBR, LAYOUT_SHARED, Flow, trace_flow
from sgweb.kernel.apply import HostFirewall, full_delta
from sgweb.kernel.runner import ProcessHandle, SubprocessRunner
from sgweb.kernel.topology import (
    SHARED_BRIDGE,
    RemoteSpec,
    Shape,
    Topology,
    TopologySpec,
    bridge_of,
    build,
    host_spec_for_ports,
)

HOST = "host1"
UPLINK = "sgup0"
OUTSIDE = RemoteSpec("outside", "fa:16:3e:ee:00:07", ("198.51.100.7/24", "2001:db8:1::7/64"))
OTHER = RemoteSpec("other", "fa:16:3e:ee:00:09", ("203.0.113.9/24", "2001:db8:2::9/64"))
DHCP = RemoteSpec("dhcp", "fa:16:3e:ee:00:02", ("192.0.2.2/24", "2001:db8::2/64"))
REMOTES = (OUTSIDE, OTHER, DHCP)

HitKey = tuple[str, str, int]


@dataclass
class Observation:
    """One probe as the kernel and the tracer saw it."""

    description: str
    kernel_ok: bool
    flow: Flow
    tracer_ok: bool
    kernel_hits: Multiset[HitKey]
    tracer_hits: Multiset[HitKey]
    compare_counters: bool = True

    def assert_agrees(self, expected_ok: bool | None = None) -> None:
        problems = []
        if expected_ok is not None and self.kernel_ok != expected_ok:
            problems.append(f"kernel {'allowed' if self.kernel_ok else 'blocked'} it")
        if self.kernel_ok != self.tracer_ok:
            problems.append(
                f"tracer says {'allowed' if self.tracer_ok else 'blocked'} "
                f"({self.flow.text}), kernel {'allowed' if self.kernel_ok else 'blocked'}"
            )
        if self.compare_counters and self.kernel_hits != self.tracer_hits:
            only_kernel = self.kernel_hits - self.tracer_hits
            only_tracer = self.tracer_hits - self.kernel_hits
            problems.append(
                f"counters differ: only the kernel counted {dict(only_kernel)}, "
                f"only the tracer predicted {dict(only_tracer)}"
            )
        assert not problems, f"{self.description}: " + "; ".join(problems)


def _delta(before: dict, after: dict) -> Multiset[HitKey]:
    hits: Multiset[HitKey] = Multiset()
    for (table, chain), counters in after.items():
        previous = before.get((table, chain), [])
        for position, counter in enumerate(counters, start=1):
            old = previous[position - 1].packets if position <= len(previous) else 0
            if counter.packets != old:
                hits[(table, chain, position)] += counter.packets - old
    return hits


def _flow_hits(flow: Flow, *, with_reply: bool) -> Multiset[HitKey]:
    hits: Multiset[HitKey] = Multiset()
    hops = list(flow.hops) + (list(flow.reply_hops) if with_reply else [])
    for hop in hops:
        if hop.trace is not None:
            hits.update(hit.key for hit in hop.trace.matched)
    return hits


@dataclass
class FirewallLab:
    topology: Topology
    firewall: HostFirewall
    shape: Shape
    labels: dict[str, str]  # port id -> VM label
    state: HostState = field(default_factory=HostState)
    compiled: CompiledHost | None = None
    # Name each port's bridge in the state (the Linux-bridge way). Without hints the compiler
    # zones traffic towards a VM by its qvb veth, which only the bridge-per-port shape has.
    bridge_hints: bool = True

    @property
    def runner(self) -> SubprocessRunner:
        return self.topology.runner  # type: ignore[return-value]

    @property
    def host_ns(self) -> str:
        return self.topology.ns(HOST)

    def label(self, port_id: str) -> str:
        return self.labels[port_id]

    # -- firewall state -----------------------------------------------------------------------

    def with_bridges(self, state: HostState) -> HostState:
        """The state with each port's bridge set as this topology plugs it (with hints)."""
        if not self.bridge_hints:
            return state
        ports = tuple(replace(port, bridge=bridge_of(port.id, self.shape)) for port in state.ports)
        return replace(state, ports=ports)

    def reset_kernel(self) -> None:
        script = "".join(
            f"{tool} -w -t {table} -F\n{tool} -w -t {table} -X\n"
            for tool in ("iptables", "ip6tables")
            for table in ("raw", "filter")
        )
        self.runner.run(["sh", "-ec", script + "ipset destroy\n"], netns=self.host_ns)
        self.runner.run(["conntrack", "-F"], netns=self.host_ns, check=False)

    def apply_fresh(self, state: HostState) -> CompiledHost:
        """Forget whatever is loaded and apply `state` whole."""
        self.reset_kernel()
        self.state = self.with_bridges(state)
        self.compiled = compile_host(self.state)
        self.firewall.apply(full_delta(self.compiled)).raise_for_error()
        return self.compiled

    def settle(self, quiet_for: float = 0.6, timeout: float = 6.0) -> None:
        """Wait until no counter moves: endpoints send a few MLD reports after their links come
        up, and those would be counted against the first probes."""
        deadline = time.monotonic() + timeout
        last = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            now = (self.firewall.read_counters(4), self.firewall.read_counters(6))
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_for:
                return
            time.sleep(0.1)

    # -- probes -------------------------------------------------------------------------------

    def _endpoint_label(self, endpoint: str) -> str:
        if endpoint in self.labels:
            return self.labels[endpoint]
        for remote in REMOTES:
            if endpoint in (remote.name, *[a.split("/")[0] for a in remote.addresses]):
                return remote.name
        raise KeyError(endpoint)

    def _address(self, endpoint: str, family: int) -> str:
        if _is_address(endpoint):
            return endpoint
        for port in self.state.ports:
            if port.id == endpoint:
                return next(a for a in port.fixed_ips if _version(a) == family)
        for remote in REMOTES:
            if remote.name == endpoint:
                addresses = [a.split("/")[0] for a in remote.addresses]
                return next(a for a in addresses if _version(a) == family)
        raise KeyError(endpoint)

    def _trace_flow(
        self, source: str, destination: str, family: int, *, reply: bool = True, **packet: object
    ) -> Flow:
        assert self.compiled is not None
        src = source if source in self.labels else self._address(source, family)
        dst = destination if destination in self.labels else self._address(destination, family)
        return trace_flow(
            {HOST: (self.state, self.compiled)},
            src,
            dst,
            family=family,
            layout=LAYOUT_SHARED if self.shape == SHARED_BRIDGE else LAYOUT_QBR,
            uplink=UPLINK,
            reply=reply,
            **packet,  # type: ignore[arg-type]
        )

    def _observe(self, family: int, send) -> tuple[bool, Multiset[HitKey]]:
        self.runner.run(["conntrack", "-F"], netns=self.host_ns, check=False)
        before = self.firewall.read_counters(family)
        ok = send()
        after = self.firewall.read_counters(family)
        return ok, _delta(before, after)

    def ping(
        self,
        source: str,
        destination: str,
        *,
        family: int = 4,
        src_address: str | None = None,
        src_mac: str | None = None,
    ) -> Observation:
        dst = self._address(destination, family)
        src_label = self._endpoint_label(source)
        ok, hits = self._observe(
            family, lambda: self.topology.ping(src_label, dst, src=src_address, timeout=0.4)
        )
        protocol = "icmp" if family == 4 else "ipv6-icmp"
        flow = self._trace_flow(
            source, destination, family, protocol=protocol, src_address=src_address,
            src_mac=src_mac,
        )  # fmt: skip
        tracer_ok = flow.verdict == ACCEPT and flow.reply_verdict == ACCEPT
        return Observation(
            f"ping {source} -> {destination} (IPv{family})",
            ok,
            flow,
            tracer_ok,
            hits,
            # The destination answers whenever the request reached it, whatever then happens
            # to the answer.
            _flow_hits(flow, with_reply=flow.verdict == ACCEPT),
        )

    def icmp_message(
        self, source: str, destination: str, icmp_type: int, *, family: int = 6
    ) -> Observation:
        """One ICMP message that is not an echo (e.g. a router advertisement from a VM). Nothing
        answers it, so only the counters can tell where it went; `kernel_ok` is the tracer's."""
        dst = self._address(destination, family)
        src_label = self._endpoint_label(source)
        _sent, hits = self._observe(
            family,
            lambda: self.topology.probe(src_label, "icmp", dst, "--type", str(icmp_type)),
        )
        protocol = "icmp" if family == 4 else "ipv6-icmp"
        flow = self._trace_flow(source, destination, family, protocol=protocol, icmp_type=icmp_type)
        flow_ok = flow.verdict == ACCEPT
        return Observation(
            f"icmp type {icmp_type} {source} -> {destination} (IPv{family})",
            flow_ok,
            flow,
            flow_ok,
            hits,
            _flow_hits(flow, with_reply=False),
        )

    def tcp(self, source: str, destination: str, port: int, *, family: int = 4) -> Observation:
        """A TCP connect to a listener; counters are compared only when the connection fails
        (an accepted connection is several packets in both directions)."""
        dst = self._address(destination, family)
        src_label = self._endpoint_label(source)
        listener = self.listen(destination, "tcp", port)
        try:
            ok, hits = self._observe(
                family, lambda: self.topology.tcp_connect(src_label, dst, port, timeout=0.4)
            )
        finally:
            listener.stop()
            self._close_leftover_tcp(src_label, self._endpoint_label(destination))
        flow = self._trace_flow(
            source, destination, family, protocol="tcp", sport=45000, dport=port
        )
        return Observation(
            f"tcp {source} -> {destination}:{port} (IPv{family})",
            ok,
            flow,
            flow.verdict == ACCEPT and flow.reply_verdict == ACCEPT,
            hits,
            _flow_hits(flow, with_reply=flow.verdict == ACCEPT),  # the SYN and its SYN-ACK
            compare_counters=not ok,
        )

    def _close_leftover_tcp(self, *labels: str, timeout: float = 2.0) -> None:
        """Let the probe's connection finish closing before the next probe flushes conntrack.

        A FIN sent after that flush has no conntrack entry, so the kernel drops it as INVALID
        and the endpoint retransmits it for many seconds: each copy lands in some later probe's
        counters (CI saw a listener's late FIN counted against three later seeds). Wait for the
        close to finish; destroy whatever is still half-closed when the wait runs out."""
        connected = ["ss", "-Htn", "state", "connected", "exclude", "time-wait"]
        deadline = time.monotonic() + timeout
        for label in labels:
            netns = self.topology.ns(label)
            while self.runner.run(connected, netns=netns, check=False).stdout.strip():
                if time.monotonic() >= deadline:
                    self.runner.run(["ss", "-K", *connected[2:]], netns=netns, check=False)
                    break
                time.sleep(0.02)

    def udp(
        self,
        source: str,
        destination: str,
        port: int,
        *,
        sport: int = 40000,
        family: int = 4,
    ) -> Observation:
        """One datagram to a listener; allowed means the listener received it."""
        dst = self._address(destination, family)
        src_label = self._endpoint_label(source)
        listener = self.listen(destination, "udp", port)
        try:
            ok, hits = self._observe(
                family,
                lambda: self._udp_arrives(src_label, dst, port, sport, listener),
            )
        finally:
            listener.stop()
        flow = self._trace_flow(
            source, destination, family, protocol="udp", sport=sport, dport=port
        )
        return Observation(
            f"udp {source}:{sport} -> {destination}:{port} (IPv{family})",
            ok,
            flow,
            flow.verdict == ACCEPT,
            hits,
            _flow_hits(flow, with_reply=False),
        )

    def _udp_arrives(
        self, src_label: str, dst: str, port: int, sport: int, listener: ProcessHandle
    ) -> bool:
        self.topology.udp_send(src_label, dst, port, sport=sport)
        deadline = time.monotonic() + 0.4
        while time.monotonic() < deadline:
            stdout, _ = listener.read_output()
            if any('"from"' in line for line in stdout.splitlines()):
                return True
            time.sleep(0.02)
        return False

    def listen(self, endpoint: str, protocol: str, port: int) -> ProcessHandle:
        return self.topology.listen(self._endpoint_label(endpoint), protocol, port)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def build_lab(
    runner: SubprocessRunner, prefix: str, ports: tuple[Port, ...], shape: Shape
) -> FirewallLab:
    labels = {port.id: f"vm{index}" for index, port in enumerate(ports, start=1)}
    host = host_spec_for_ports(
        HOST,
        [(labels[p.id], p.id, p.mac_address, p.fixed_ips) for p in ports],
        shape,
    )
    topology = build(TopologySpec(prefix, (host,), REMOTES), runner)
    firewall = HostFirewall(runner, topology.ns(HOST))
    return FirewallLab(topology, firewall, shape, labels)


def listener_sources(output: str) -> list[str]:
    return [json.loads(line)["from"] for line in output.splitlines() if '"from"' in line]
