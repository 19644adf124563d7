"""Randomised checks: random hosts and packets, the tracer against a naive reference walk.

The reference below re-implements netfilter's walk the slow, obvious way (every rule of every
chain, matches evaluated with `ipaddress`), so a disagreement points at the tracer's index or
its compiled matchers. Seeds are fixed, so a failure is reproducible.
"""

from __future__ import annotations

import ipaddress
import random

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import ACCEPT, CT, DROP, RETURN, CompiledHost, Match, Rule
from sgweb.firewall.model import (
    AddressPair,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.protocols import IPV6_ONLY, NAME_BY_NUMBER, NUMBER_BY_NAME, normalize_protocol
from sgweb.firewall.trace.ctstate import classify
from sgweb.firewall.trace.explain import explain
from sgweb.firewall.trace.tracer import STEP_RULE, Packet, protocol_number, trace

V4_PREFIXES = ["198.51.100.0/24", "198.51.100.64/26", "203.0.113.0/25", "192.0.2.0/24"]
V6_PREFIXES = ["2001:db8:100::/48", "2001:db8::/32"]


def _uuid(rng: random.Random) -> str:
    hex32 = f"{rng.getrandbits(128):032x}"
    return f"{hex32[:8]}-{hex32[8:12]}-4{hex32[13:16]}-8{hex32[17:20]}-{hex32[20:]}"


def _random_rule(rng: random.Random, group_ids: list[str]) -> SecurityGroupRule:
    direction = rng.choice(["ingress", "egress"])
    ethertype = rng.choice(["IPv4", "IPv4", "IPv6"])
    protocol = rng.choice(["tcp", "udp", "icmp", None, "17", "132", "udplite", "253"])
    low = high = None
    if protocol in ("tcp", "udp", "17", "132", "udplite") and rng.random() < 0.8:
        low = rng.choice([22, 53, 80, 1000, 65535])
        high = low if rng.random() < 0.5 else min(65535, low + rng.randrange(0, 50))
    elif protocol == "icmp" and rng.random() < 0.6:
        v6_types = [0, 1, 3, 8, 128, 129, 135, 255]
        low = rng.choice(v6_types) if ethertype == "IPv6" else rng.choice([0, 3, 8, 11, 13, 255])
        high = rng.choice([None, 0, 1])
    prefix = group = None
    choice = rng.random()
    if choice < 0.35:
        prefix = rng.choice(V4_PREFIXES if ethertype == "IPv4" else V6_PREFIXES)
    elif choice < 0.6:
        group = rng.choice(group_ids)
    return SecurityGroupRule(_uuid(rng), direction, ethertype, protocol, low, high, prefix, group)


def random_state(seed: int, ports: int = 12) -> HostState:
    rng = random.Random(seed)
    group_ids = [_uuid(rng) for _ in range(4)]
    groups = tuple(
        SecurityGroup(
            gid,
            f"g{index}",
            stateful=rng.random() < 0.8,
            rules=tuple(_random_rule(rng, group_ids) for _ in range(rng.randrange(8))),
        )
        for index, gid in enumerate(group_ids)
    )
    port_list = []
    for index in range(ports):
        mac = f"fa:16:3e:00:{seed % 256:02x}:{index:02x}"
        fixed = (f"192.0.2.{10 + index}", f"2001:db8:1::{10 + index:x}")
        pairs = (AddressPair(f"203.0.113.{10 + index}", rng.choice([None, "fa:16:3e:aa:00:01"])),)
        port_id = _uuid(rng)
        port_list.append(
            Port(
                port_id,
                mac,
                fixed,
                tuple(rng.sample(group_ids, rng.randrange(3))),
                pairs if rng.random() < 0.3 else (),
                port_security_enabled=rng.random() < 0.9,
                dhcp_servers=("192.0.2.2",),
                # Two networks on one host; half the seeds name no bridge (the hybrid way).
                network_id=f"net-{index % 2}",
                bridge=None if seed % 2 else "qbr" + port_id[:11],
            )
        )
    members = []
    for gid in group_ids:
        addresses: list[str] = []
        for port in port_list:
            if gid in port.security_groups:
                addresses += [*port.fixed_ips, *(p.ip_address for p in port.allowed_address_pairs)]
        members.append((gid, tuple(addresses)))
    return HostState(tuple(port_list), groups, tuple(members), enable_ipset=rng.random() < 0.7)


def random_packet(rng: random.Random, state: HostState) -> Packet:
    port = rng.choice(state.ports)
    family = rng.choice([4, 4, 6])
    own = next(a for a in port.fixed_ips if ipaddress.ip_address(a).version == family)
    others = [
        a for p in state.ports for a in p.fixed_ips if ipaddress.ip_address(a).version == family
    ]
    outside = (
        rng.choice(["198.51.100.7", "198.51.100.70", "203.0.113.200", "192.0.2.2"])
        if family == 4
        else rng.choice(["2001:db8:100::7", "2001:db8:ff::1"])
    )
    remote = rng.choice([*others, outside])
    icmp = "icmp" if family == 4 else "ipv6-icmp"
    protocol = rng.choice(["tcp", "udp", icmp, icmp, "sctp", "47", "udplite", "253"])
    fields: dict[str, object] = {
        "protocol": protocol,
        "ct_state": rng.choice(["NEW", "NEW", "ESTABLISHED", "INVALID"]),
    }
    if protocol in ("tcp", "udp", "sctp", "udplite"):
        fields["sport"] = rng.choice([67, 68, 40000])
        fields["dport"] = rng.choice([22, 53, 67, 68, 80, 1000, 1020, 65535])
        if protocol == "tcp":
            fields["tcp_flags"] = rng.choice([None, None, "SYN,ACK", "ACK", "RST"])
    elif protocol in ("icmp", "ipv6-icmp"):
        fields["icmp_type"] = rng.choice([0, 1, 3, 8, 11, 13, 128, 129, 134, 135, 200, 255])
        fields["icmp_code"] = rng.choice([0, 1])
    tap = port.device or "tap" + port.id[:11]
    if rng.random() < 0.5:  # leaving the VM
        mac = port.mac_address if rng.random() < 0.85 else "fa:16:3e:ff:ff:ff"
        src = own if rng.random() < 0.85 else remote
        return Packet(
            src=src,
            dst=remote,
            src_mac=mac,
            physdev_in=tap,
            physdev_out=rng.choice(["qvb" + port.id[:11], "eth1"]),
            **fields,
        )
    hook = "INPUT" if rng.random() < 0.1 else "FORWARD"
    if hook == "INPUT":
        return Packet(
            src=own, dst=remote, src_mac=port.mac_address, physdev_in=tap, hook=hook, **fields
        )
    return Packet(src=remote, dst=own, physdev_in="qvb" + port.id[:11], physdev_out=tap, **fields)


# --- the naive reference walk -------------------------------------------------------------------


def _ref_matches(match: Match, packet: Packet, table: str, compiled: CompiledHost) -> bool:
    family = packet.family
    bridged = packet.physdev_in is not None and packet.hook != "OUTPUT"
    out_dev = (
        packet.physdev_out if bridged and table == "filter" and packet.hook == "FORWARD" else None
    )
    in_dev = packet.physdev_in if bridged else None

    def within(address: str | None, cidr: str) -> bool:
        if address is None:
            return False
        network = ipaddress.ip_network(cidr, strict=False)
        return network.version == family and ipaddress.ip_address(address) in network

    if match.source and not within(packet.src, match.source):
        return False
    if match.destination and not within(packet.dst, match.destination):
        return False
    if match.in_interface and match.in_interface != packet.in_interface:
        return False
    wanted = protocol_number(match.protocol)
    if wanted is not None and wanted != protocol_number(packet.protocol):
        return False
    for port_range, value in (
        (match.source_port, packet.sport),
        (match.destination_port, packet.dport),
        (match.multiport_destination, packet.dport),
    ):
        if port_range and (value is None or not port_range.low <= value <= port_range.high):
            return False
    # xt_icmp reads type 255 as any type; ip6t_icmp6 has no such wildcard.
    any_type = match.icmp_type == 255 and protocol_number(match.protocol) == 1
    if match.icmp_type is not None and not any_type:
        if packet.effective_icmp_type != match.icmp_type:
            return False
        if match.icmp_code is not None and packet.effective_icmp_code != match.icmp_code:
            return False
    uses_physdev = (
        match.physdev_in or match.physdev_out or match.physdev_is_bridged or match.physdev_is_in
    )
    if uses_physdev:
        if not bridged:
            return False
        if match.physdev_is_bridged and out_dev is None:
            return False
        if match.physdev_is_in and in_dev is None:
            return False
        if match.physdev_in and match.physdev_in != in_dev:
            return False
        if match.physdev_out and match.physdev_out != out_dev:
            return False
    if match.states and packet.ct_state not in match.states:
        return False
    if match.mac_source and (packet.src_mac or "").lower() != match.mac_source.lower():
        return False
    if match.match_set:
        ipset = next(s for s in compiled.ipsets if s.name == match.match_set)
        address = packet.dst if match.match_set_direction == "dst" else packet.src
        if not any(within(address, member) for member in ipset.members):
            return False
    return True


def reference_walk(compiled: CompiledHost, packet: Packet) -> tuple[str, list[tuple], bool]:
    """(verdict, matched keys, notrack) the slow way."""
    hits: list[tuple] = []
    family = compiled.family(packet.family)
    state = {"ct": packet.ct_state, "ct_done": False, "notrack": False}

    def walk(table_name: str, chain_name: str, view: Packet) -> str | None:
        table = family.table(table_name)
        chain = table.chain(chain_name) if table else None
        if chain is None:
            return None
        for position, rule in enumerate(chain.rules, start=1):
            if not _ref_matches(rule.match, view, table_name, compiled):
                continue
            hits.append((table_name, chain_name, position))
            outcome = _apply(rule, table_name, view)
            if outcome is not None:
                return outcome
        return None

    def _apply(rule: Rule, table_name: str, view: Packet) -> str | None:
        if rule.target in (ACCEPT, DROP):
            return rule.target
        if rule.target == RETURN:
            return RETURN
        if rule.target == CT:
            if not state["ct_done"]:
                state["ct_done"] = True
                state["notrack"] = "--notrack" in rule.target_args
            return None
        outcome = walk(table_name, rule.target, view)
        return None if outcome == RETURN else outcome

    raw_chain = "OUTPUT" if packet.hook == "OUTPUT" else "PREROUTING"
    verdict = walk("raw", raw_chain, packet)
    if verdict == DROP:
        return DROP, hits, bool(state["notrack"])
    if state["notrack"]:
        packet = Packet(**{**_fields(packet), "ct_state": "UNTRACKED"})
    else:
        # Conntrack's own verdict is taken as given here; the kernel tier checks it against
        # real kernels (tests/kernel/test_conntrack_truth.py).
        packet = Packet(**{**_fields(packet), "ct_state": classify(packet, packet.ct_state)[0]})
    verdict = walk("filter", packet.hook, packet)
    return (DROP if verdict == DROP else ACCEPT), hits, bool(state["notrack"])


def _fields(packet: Packet) -> dict[str, object]:
    return {name: getattr(packet, name) for name in Packet.__dataclass_fields__}


@pytest.mark.parametrize("seed", range(8))
def test_random_packets_agree_with_the_naive_walk_and_always_end_in_a_verdict(seed: int):
    state = random_state(seed)
    compiled = compile_host(state)
    rng = random.Random(1000 + seed)
    verdicts = set()
    for _ in range(150):
        packet = random_packet(rng, state)
        result = trace(compiled, packet)
        assert result.verdict in (ACCEPT, DROP)
        verdicts.add(result.verdict)
        tried = {(s.table, s.chain, s.position) for s in result.path if s.event == STEP_RULE}
        assert set(result.matched_keys) <= tried
        assert all(
            s.matched
            for s in result.path
            if (s.table, s.chain, s.position) in set(result.matched_keys) and s.event == STEP_RULE
        )
        verdict, hits, notrack = reference_walk(compiled, packet)
        assert (result.verdict, list(result.matched_keys), result.notrack) == (
            verdict,
            hits,
            notrack,
        ), packet
        why = explain(result, state)
        assert why.verdict == result.verdict and why.text
    # Both verdicts occur, so the agreement above is not only about packets dropped early.
    assert verdicts == {ACCEPT, DROP}


def test_protocol_table_covers_every_name_the_renderer_prints():
    for name, number in NUMBER_BY_NAME.items():
        assert protocol_number(name) == number
    # What a rule stores and the renderer prints after -p is normalize_protocol's spelling;
    # every protocol number, in either family, must read back as itself.
    for ethertype in ("IPv4", "IPv6"):
        assert protocol_number(normalize_protocol(0, ethertype)) is None
        for number in range(1, 256):
            if ethertype == "IPv4" and NAME_BY_NUMBER.get(number) in IPV6_ONLY:
                continue  # ICMPv6 and IPv6 extension headers in an IPv4 rule are refused
            printed = normalize_protocol(number, ethertype)
            assert printed is not None and protocol_number(printed) == number, (number, printed)
