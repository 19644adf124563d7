"""Which connection-tracking entries to cut after an apply, so "removed" means removed.

Established connections pass the per-port chains through the RELATED,ESTABLISHED rule, so
removing the rule that let a connection in does not stop it. Like Neutron, after a change we
delete the conntrack entries that a lost allowance may have admitted:

* a rule a port no longer has (its group lost the rule, or the port left the group): the port's
  entries of that family and protocol (and destination port when the rule named one), in the
  port's conntrack zone;
* a member that left a remote group still named by the port's rules: entries to or from that
  member's address in the port's zone;
* port security switched back on: every entry of the port, since none was ever filtered.

This cuts somewhat more than the strict minimum (another rule may still allow a cut flow).
That is safe: the next packet of such a flow is looked up again (TCP loose pickup) and passes
as NEW if a rule still allows it, so only connections nothing allows any more stay cut.
Pure: it plans `Cut`s; the agent runs them through `HostFirewall.flush_conntrack`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from sgweb.firewall.ir import CT, CompiledHost
from sgweb.firewall.model import EGRESS, INGRESS, IPV4, HostState, Port

_PORTED = {"tcp", "udp", "sctp", "udplite", "6", "17", "132", "136"}
_CONNTRACK_PROTOCOL = {"ipv6-icmp": "icmpv6", "icmpv6": "icmpv6", "58": "icmpv6", "1": "icmp"}


@dataclass(frozen=True, slots=True)
class Cut:
    port_id: str
    addresses: tuple[str, ...]
    zone: int | None
    protocol: str | None = None
    port: int | None = None
    why: str = ""


def _addresses(port: Port, ethertype: str | None = None) -> tuple[str, ...]:
    found = []
    for text in (*port.fixed_ips, *(pair.ip_address for pair in port.allowed_address_pairs)):
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if network.num_addresses != 1:
            continue  # conntrack -D takes addresses, not prefixes; a pair CIDR is left alone
        version = 4 if ethertype == IPV4 else 6
        if ethertype is None or network.version == version:
            found.append(str(network.network_address))
    return tuple(dict.fromkeys(found))


# (direction, ethertype, protocol, port_range_min, port_range_max, remote_ip_prefix,
# remote_group_id) of one stateful rule
_Allowance = tuple[str, str, str | None, int | None, int | None, str | None, str | None]


def _allowances(state: HostState, port: Port) -> set[_Allowance]:
    keys = set()
    for group_id in port.security_groups:
        group = state.group(group_id)
        if group is None or not group.stateful:
            continue
        for rule in group.rules:
            keys.add(
                (
                    rule.direction,
                    rule.ethertype,
                    (rule.protocol or "").lower() or None,
                    rule.port_range_min,
                    rule.port_range_max,
                    rule.remote_ip_prefix,
                    rule.remote_group_id,
                )
            )
    return keys


def zones(compiled: CompiledHost) -> dict[str, int]:
    """port id -> its conntrack zone, read from the compiled raw table's CT rules."""
    found: dict[str, int] = {}
    for family in (compiled.v4, compiled.v6):
        raw = family.table("raw")
        if raw is None:
            continue
        for chain in raw.chains:
            for rule in chain.rules:
                args = rule.target_args
                if rule.target != CT or "--zone" not in args or not rule.origin.port_id:
                    continue
                try:
                    found.setdefault(rule.origin.port_id, int(args[args.index("--zone") + 1]))
                except (IndexError, ValueError):
                    continue
    return found


def plan_cuts(
    old: HostState, new: HostState, new_compiled: CompiledHost | None = None
) -> list[Cut]:
    zone_of = zones(new_compiled) if new_compiled is not None else {}
    old_ports = {port.id: port for port in old.ports}
    old_members = dict(old.remote_group_members)
    new_members = dict(new.remote_group_members)
    edits = new_compiled.member_edits if new_compiled is not None else ()
    # group id -> the host addresses that left it: once per group, not once per port naming
    # it (a group of 50,000 on a host of 50 ports was 100 sets of 50,000, ~0.6 s an apply).
    left: dict[str, tuple[str, ...]] = {}
    cuts: list[Cut] = []
    for port in new.ports:
        before = old_ports.get(port.id)
        if before is None or not port.port_security_enabled:
            continue  # a new port has no connections; an unfiltered one keeps them all
        zone = zone_of.get(port.id)
        if not before.port_security_enabled:
            cuts.append(Cut(port.id, _addresses(port), zone, why="port security enabled"))
            continue
        lost = _allowances(old, before) - _allowances(new, port)
        for direction, ethertype, protocol, low, high, _prefix, _group in sorted(lost, key=repr):
            addresses = _addresses(port, ethertype)
            if not addresses:
                continue
            proto = _CONNTRACK_PROTOCOL.get(protocol or "", protocol)
            single = low if protocol in _PORTED and low is not None and low == high else None
            cuts.append(
                Cut(port.id, addresses, zone, proto, single, why=f"{direction} rule removed")
            )
        # Members that left a remote group this port's remaining rules still name.
        for group_id in sorted(_remote_groups(new, port)):
            members = left.get(group_id)
            if members is None:
                members = left[group_id] = _left(
                    old_members.get(group_id, ()), new_members.get(group_id, ()), group_id, edits
                )
            if members:
                cuts.append(Cut(port.id, members, zone, why=f"left remote group {group_id}"))
    return _merge(cuts)


def _left(
    old: tuple[str, ...], new: tuple[str, ...], group_id: str, edits: Iterable[MemberEdits]
) -> tuple[str, ...]:
    """The addresses of the host members (a prefix is no conntrack address) in `old` and not in
    `new`, without their prefix length. From the compile's own record when it edited this
    group from `old` to `new` (`CompiledHost.member_edits`: no set of 50,000 built twice, and
    an address only spelled anew has not left); else from the sets."""
    if old is new:
        return ()
    for gid, before, after, removed in edits:
        if gid == group_id and before is old and after is new:
            gone: Iterable[str] = removed
            break
    else:
        gone = set(old).difference(new)
    hosts = sorted(ip.split("/")[0] for ip in gone if "/" not in ip or ip.endswith(_HOSTS))
    return tuple(hosts)


_HOSTS = ("/32", "/128")
MemberEdits = tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _remote_groups(state: HostState, port: Port) -> set[str]:
    names: set[str] = set()
    for group_id in port.security_groups:
        group = state.group(group_id)
        if group is None:
            continue
        names.update(
            rule.remote_group_id
            for rule in group.rules
            if rule.remote_group_id and rule.direction in (INGRESS, EGRESS)
        )
    return names


def _merge(cuts: list[Cut]) -> list[Cut]:
    """Drop exact duplicates and cuts covered by a protocol-wide cut of the same port."""
    seen: set[tuple[str, tuple[str, ...], int | None, str | None, int | None]] = set()
    merged = []
    wide = {(c.port_id, c.addresses, c.zone) for c in cuts if c.protocol is None}
    for cut in cuts:
        if cut.protocol is not None and (cut.port_id, cut.addresses, cut.zone) in wide:
            continue
        key = (cut.port_id, cut.addresses, cut.zone, cut.protocol, cut.port)
        if key not in seen:
            seen.add(key)
            merged.append(cut)
    return merged
