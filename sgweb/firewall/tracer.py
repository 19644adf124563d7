"""Walk a compiled host's chains for one packet, the way netfilter would.

The walk is static: it needs no kernel, only the `CompiledHost` the compiler made. It follows the
raw table's PREROUTING (or OUTPUT) first, because a `CT --notrack` there changes what the filter
table's state matches see, then the filter table's hook chain: rule by rule, jumps push, RETURN and
the end of a user chain pop, ACCEPT and DROP end the table, a built-in chain's end applies its
policy.

The result is exact about positions and hits, because the kernel tier compares `Trace.matched`
with real per-rule counters: a rule's counter goes up when all its matches match, whatever its
target (jumps, RETURN and CT included). Rules the index proves cannot match (the physdev jumps of
other ports) are not listed in the path one by one; each step says how many were skipped before
it.

Known modelling choices, all from the kernel's own behaviour (`net/netfilter/xt_physdev.c`):
- `--physdev-is-bridged` needs an output bridge port, so it never matches in INPUT or PREROUTING
  (the kernel notes measured this: Neutron's INPUT jump to the o-chain never fires).
- `--physdev-out` never matches where the output port is not known yet (PREROUTING, INPUT).
- Locally generated packets (OUTPUT) carry no bridge information: no physdev match matches.
- `xt_CT` leaves a packet alone once it has a conntrack template, so the first matching CT rule
  decides the zone or notrack; later ones still count a hit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from sgweb.firewall.ir import (
    ACCEPT,
    CT,
    DROP,
    RETURN,
    Chain,
    CompiledHost,
    IpSet,
    Match,
    Origin,
    Rule,
)
from sgweb.firewall.protocols import ALIASES, NUMBER_BY_NAME

HOOK_FORWARD = "FORWARD"
HOOK_INPUT = "INPUT"
HOOK_OUTPUT = "OUTPUT"
HOOKS = (HOOK_FORWARD, HOOK_INPUT, HOOK_OUTPUT)

CT_NEW = "NEW"
CT_ESTABLISHED = "ESTABLISHED"
CT_RELATED = "RELATED"
CT_INVALID = "INVALID"
CT_UNTRACKED = "UNTRACKED"
CT_STATES = (CT_NEW, CT_ESTABLISHED, CT_RELATED, CT_INVALID, CT_UNTRACKED)

# What a step of the path is: a rule tried, the end of a user chain reached (an implicit
# RETURN, which legacy TRACE prints as "return"), or a built-in chain's policy applied.
STEP_RULE = "rule"
STEP_RETURN = "return"
STEP_POLICY = "policy"

RAW = "raw"
FILTER = "filter"

# Every name iptables-save prints (and Neutron's aliases) -> number.
PROTOCOL_NUMBERS: Mapping[str, int] = {
    **NUMBER_BY_NAME,
    **{alias: NUMBER_BY_NAME[name] for alias, name in ALIASES.items() if name in NUMBER_BY_NAME},
    "ipip": 94,
}
# "all" / 0 in a rule means any protocol, exactly like a rule without -p.
_ANY_PROTOCOL = ("all", "any", "0")

_ECHO_REQUEST = {4: 8, 6: 128}
_ICMP_NUMBERS = {4: 1, 6: 58}
_ICMP_ANY_TYPE = 255  # iptables' "--icmp-type any"
_MAX_DEPTH = 64  # the kernel refuses loops at load; a bad hand-made IR must not hang us


class TraceError(ValueError):
    """The compiled state cannot be walked (unknown chain or set, a loop) or the packet is
    malformed."""


def protocol_number(protocol: str | int | None) -> int | None:
    """The IP protocol number for a name or number; None for "any"."""
    if protocol is None:
        return None
    if isinstance(protocol, int):
        number = protocol
    else:
        text = protocol.strip().lower()
        if text in _ANY_PROTOCOL:
            return None
        if text.isdigit():
            number = int(text)
        elif text in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[text]
        else:
            raise TraceError(f"unknown protocol {protocol!r}")
    if not 0 <= number <= 255:
        raise TraceError(f"protocol number {number} is not between 0 and 255")
    return number or None


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet as the host's netfilter sees it.

    `physdev_in` / `physdev_out` are the bridge ports (tap devices) it enters and leaves; None
    when it does not cross a bridge. `in_interface` is the IP-level input device (for bridged
    traffic, the bridge). `family` is inferred from the addresses when not given. An ICMP
    packet without a type is an echo request; without a code, code 0.
    """

    src: str | None = None
    dst: str | None = None
    protocol: str | int | None = None
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    physdev_in: str | None = None
    physdev_out: str | None = None
    in_interface: str | None = None
    hook: str = HOOK_FORWARD
    ct_state: str = CT_NEW
    family: int | None = None

    def __post_init__(self) -> None:
        families = {_address_family(a) for a in (self.src, self.dst) if a is not None}
        if len(families) > 1:
            raise TraceError(f"source {self.src} and destination {self.dst} mix IPv4 and IPv6")
        inferred = families.pop() if families else None
        if self.family is None:
            object.__setattr__(self, "family", inferred or 4)
        elif self.family not in (4, 6):
            raise TraceError(f"family must be 4 or 6, not {self.family}")
        elif inferred is not None and inferred != self.family:
            raise TraceError(f"addresses are IPv{inferred} but family {self.family} was given")
        object.__setattr__(self, "hook", self.hook.upper())
        if self.hook not in HOOKS:
            raise TraceError(f"hook must be one of {', '.join(HOOKS)}, not {self.hook}")
        object.__setattr__(self, "ct_state", self.ct_state.upper())
        if self.ct_state not in CT_STATES:
            raise TraceError(f"conntrack state must be one of {', '.join(CT_STATES)}")
        protocol_number(self.protocol)  # validates
        for name in ("sport", "dport"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise TraceError(f"{name} {value} is not a port number")
        for name in ("icmp_type", "icmp_code"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 255:
                raise TraceError(f"{name} {value} is not between 0 and 255")
        if self.hook == HOOK_INPUT and self.physdev_out is not None:
            raise TraceError("a packet delivered to the host (INPUT) leaves by no bridge port")

    @property
    def protocol_number(self) -> int | None:
        return protocol_number(self.protocol)

    @property
    def is_icmp(self) -> bool:
        return self.protocol_number == _ICMP_NUMBERS[self.family or 4]

    @property
    def effective_icmp_type(self) -> int | None:
        if not self.is_icmp:
            return None
        return _ECHO_REQUEST[self.family or 4] if self.icmp_type is None else self.icmp_type

    @property
    def effective_icmp_code(self) -> int | None:
        if not self.is_icmp:
            return None
        return 0 if self.icmp_code is None else self.icmp_code


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the walk did. For STEP_RETURN and STEP_POLICY, `rule` is None and `position`
    is the chain's length + 1 (where the walk fell off)."""

    table: str
    chain: str
    position: int
    rule: Rule | None
    matched: bool
    event: str = STEP_RULE
    # Rules of this chain between the previous step and this one that the index proved could
    # not match (other ports' physdev jumps); each of them was "tried and not matched".
    skipped: int = 0
    depth: int = 0  # 0 in the built-in chain, +1 per jump

    @property
    def origin(self) -> Origin | None:
        return self.rule.origin if self.rule is not None else None


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """A rule whose kernel counter this packet increments, once per entry."""

    table: str
    chain: str
    position: int
    rule: Rule

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.table, self.chain, self.position)


@dataclass(frozen=True, slots=True)
class Trace:
    packet: Packet
    family: int
    verdict: str  # ACCEPT | DROP
    path: tuple[Step, ...]
    matched: tuple[MatchedRule, ...]
    # The step that decided: a rule with target ACCEPT/DROP, or a built-in chain's policy.
    deciding: Step | None
    ct_state: str  # the state the filter table saw (UNTRACKED after CT --notrack)
    zone: int | None = None  # the conntrack zone a raw-table CT rule gave the packet
    notrack: bool = False

    @property
    def accepted(self) -> bool:
        return self.verdict == ACCEPT

    @property
    def origin(self) -> Origin | None:
        return self.deciding.origin if self.deciding is not None else None

    @property
    def matched_keys(self) -> tuple[tuple[str, str, int], ...]:
        return tuple(hit.key for hit in self.matched)

    @property
    def skipped(self) -> int:
        return sum(step.skipped for step in self.path)


# --- preparing a compiled host for many traces ------------------------------------------------

_Matcher = Callable[["_View"], bool]


def _is_wildcard(name: str) -> bool:
    return name.endswith("+")


class _ChainIndex:
    """One chain with its rules split by what the index can key them on: the physdev port a
    rule demands. A packet can only match keyed rules of its own ports, so the thousands of
    per-port jumps in <prefix>-FORWARD and sg-chain cost a dictionary lookup."""

    __slots__ = ("by_in", "by_out", "chain", "matchers", "table", "unkeyed")

    def __init__(self, table: str, chain: Chain) -> None:
        self.table = table
        self.chain = chain
        unkeyed: list[int] = []
        by_in: dict[str, list[int]] = {}
        by_out: dict[str, list[int]] = {}
        for position, rule in enumerate(chain.rules, start=1):
            match = rule.match
            if match.physdev_in is not None and not _is_wildcard(match.physdev_in):
                by_in.setdefault(match.physdev_in, []).append(position)
            elif match.physdev_out is not None and not _is_wildcard(match.physdev_out):
                by_out.setdefault(match.physdev_out, []).append(position)
            else:
                unkeyed.append(position)
        self.unkeyed = tuple(unkeyed)
        self.by_in = {name: tuple(positions) for name, positions in by_in.items()}
        self.by_out = {name: tuple(positions) for name, positions in by_out.items()}
        self.matchers: dict[int, _Matcher] = {}

    def candidates(self, view: _View) -> list[int] | tuple[int, ...]:
        keyed_in = self.by_in.get(view.physin, ()) if view.physin is not None else ()
        keyed_out = self.by_out.get(view.physout, ()) if view.physout is not None else ()
        if not keyed_in and not keyed_out:
            return self.unkeyed
        return sorted((*self.unkeyed, *keyed_in, *keyed_out))


class _SetIndex:
    __slots__ = ("addresses", "family", "networks")

    def __init__(self, family: int, members: tuple[str, ...]) -> None:
        self.family = family
        addresses: set[int] = set()
        networks: list[tuple[int, int]] = []
        for member in members:
            network = ipaddress.ip_network(member, strict=False)
            if network.num_addresses == 1:
                addresses.add(int(network.network_address))
            else:
                networks.append((int(network.network_address), int(network.netmask)))
        self.addresses = frozenset(addresses)
        self.networks = tuple(networks)

    def contains(self, family: int, address: int | None) -> bool:
        if address is None or family != self.family:
            return False
        if address in self.addresses:
            return True
        return any(address & mask == net for net, mask in self.networks)


@dataclass(slots=True)
class TraceIndex:
    """A compiled host prepared for tracing; build once with `prepare`, reuse for every
    packet. Only chain names are indexed up front: a chain's physdev index, its rule matchers
    and an ipset's parsed members are built the first time a walk needs them, so preparing a
    50k-rule host costs little more than listing its chains."""

    compiled: CompiledHost
    raw_chains: dict[tuple[int, str, str], Chain] = field(default_factory=dict)
    raw_sets: dict[str, IpSet] = field(default_factory=dict)
    chains: dict[tuple[int, str, str], _ChainIndex] = field(default_factory=dict)
    sets: _LazySets = field(default_factory=lambda: _LazySets({}))

    def chain(self, family: int, table: str, name: str) -> _ChainIndex | None:
        key = (family, table, name)
        indexed = self.chains.get(key)
        if indexed is None:
            chain = self.raw_chains.get(key)
            if chain is None:
                return None
            indexed = self.chains[key] = _ChainIndex(table, chain)
        return indexed


class _LazySets(dict[str, _SetIndex]):
    """Parsed ipsets by name, parsed on first lookup."""

    def __init__(self, ipsets: dict[str, IpSet]) -> None:
        super().__init__()
        self.ipsets = ipsets

    def __missing__(self, name: str) -> _SetIndex:
        ipset = self.ipsets[name]
        parsed = _SetIndex(6 if ipset.family == "inet6" else 4, ipset.members)
        self[name] = parsed
        return parsed

    def get(self, name: str, default: _SetIndex | None = None) -> _SetIndex | None:  # type: ignore[override]
        if name in self or name in self.ipsets:
            return self[name]
        return default


def prepare(compiled: CompiledHost) -> TraceIndex:
    index = TraceIndex(compiled)
    for compiled_family in (compiled.v4, compiled.v6):
        for table in compiled_family.tables:
            for chain in table.chains:
                index.raw_chains[(compiled_family.family, table.name, chain.name)] = chain
    index.raw_sets = {ipset.name: ipset for ipset in compiled.ipsets}
    index.sets = _LazySets(index.raw_sets)
    return index


_PREPARED: dict[int, TraceIndex] = {}
_PREPARED_LIMIT = 8


def _prepared(compiled: CompiledHost) -> TraceIndex:
    # Keyed by identity: hashing a 50k-rule frozen dataclass would cost more than the trace.
    # The index holds the CompiledHost, so its id cannot be reused while cached.
    index = _PREPARED.get(id(compiled))
    if index is not None and index.compiled is compiled:
        return index
    index = prepare(compiled)
    if len(_PREPARED) >= _PREPARED_LIMIT:
        _PREPARED.pop(next(iter(_PREPARED)))
    _PREPARED[id(compiled)] = index
    return index


# --- one packet as seen at one table ------------------------------------------------------------


class _View:
    """The packet's fields as the matches of one table at one hook see them."""

    __slots__ = (
        "bridged",
        "dport",
        "dst",
        "family",
        "icmp_code",
        "icmp_type",
        "in_interface",
        "physin",
        "physout",
        "proto",
        "sets",
        "sport",
        "src",
        "src_mac",
        "state",
    )

    def __init__(self, packet: Packet, table: str, state: str, sets: dict[str, _SetIndex]):
        self.family = packet.family or 4
        self.src = int(ipaddress.ip_address(packet.src)) if packet.src is not None else None
        self.dst = int(ipaddress.ip_address(packet.dst)) if packet.dst is not None else None
        self.proto = packet.protocol_number
        self.sport = packet.sport
        self.dport = packet.dport
        self.icmp_type = packet.effective_icmp_type
        self.icmp_code = packet.effective_icmp_code
        self.src_mac = packet.src_mac.lower() if packet.src_mac is not None else None
        self.in_interface = packet.in_interface
        self.state = state
        self.sets = sets
        # Bridge information exists for packets that entered through a bridge port; locally
        # generated packets have none at the IP hooks.
        self.bridged = packet.physdev_in is not None and packet.hook != HOOK_OUTPUT
        self.physin = packet.physdev_in if self.bridged else None
        # The output bridge port is known only once the bridge has forwarded the packet.
        forwarded = table == FILTER and packet.hook == HOOK_FORWARD
        self.physout = packet.physdev_out if self.bridged and forwarded else None


def _interface_matches(actual: str | None, pattern: str) -> bool:
    if actual is None:
        return False
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


@lru_cache(maxsize=65536)
def _network(cidr: str) -> tuple[int, int, int]:
    network = ipaddress.ip_network(cidr, strict=False)
    return network.version, int(network.network_address), int(network.netmask)


def _compile_match(match: Match, sets: Mapping[str, _SetIndex]) -> _Matcher:
    """A predicate for one rule's matches; each check is a small closure so a rule costs a few
    attribute reads, not a re-parse of its CIDRs."""
    checks: list[_Matcher] = []

    for cidr, attribute in ((match.source, "src"), (match.destination, "dst")):
        if cidr is None:
            continue
        version, net, mask = _network(cidr)

        def address_check(
            v: _View, version: int = version, net: int = net, mask: int = mask, a: str = attribute
        ) -> bool:
            address = getattr(v, a)
            return v.family == version and address is not None and address & mask == net

        checks.append(address_check)

    if match.in_interface is not None:
        in_interface = match.in_interface
        checks.append(lambda v: _interface_matches(v.in_interface, in_interface))

    if match.protocol is not None:
        number = protocol_number(match.protocol)
        if number is not None:
            checks.append(lambda v: v.proto == number)

    for port_range, attribute in (
        (match.source_port, "sport"),
        (match.destination_port, "dport"),
        (match.multiport_destination, "dport"),
    ):
        if port_range is None:
            continue
        low, high = port_range.low, port_range.high

        def port_check(v: _View, low: int = low, high: int = high, a: str = attribute) -> bool:
            port = getattr(v, a)
            return port is not None and low <= port <= high

        checks.append(port_check)

    if match.icmp_type is not None and match.icmp_type != _ICMP_ANY_TYPE:
        icmp_type, icmp_code = match.icmp_type, match.icmp_code

        def icmp_check(v: _View) -> bool:
            if v.icmp_type != icmp_type:
                return False
            return icmp_code is None or v.icmp_code == icmp_code

        checks.append(icmp_check)

    is_in = match.physdev_is_in
    if (
        match.physdev_in is not None
        or match.physdev_out is not None
        or match.physdev_is_bridged
        or is_in
    ):
        physdev_in, physdev_out = match.physdev_in, match.physdev_out
        is_bridged = match.physdev_is_bridged

        def physdev_check(v: _View) -> bool:
            if not v.bridged:
                return False
            if is_bridged and v.physout is None:
                return False
            if is_in and v.physin is None:
                return False
            if physdev_in is not None and not _interface_matches(v.physin, physdev_in):
                return False
            return physdev_out is None or _interface_matches(v.physout, physdev_out)

        checks.append(physdev_check)

    if match.states:
        states = frozenset(s.upper() for s in match.states)
        checks.append(lambda v: v.state in states)

    if match.mac_source is not None:
        mac = match.mac_source.lower()
        checks.append(lambda v: v.src_mac == mac)

    if match.match_set is not None:
        ipset = sets.get(match.match_set)
        if ipset is None:
            raise TraceError(f"rule names ipset {match.match_set!r}, which is not compiled")
        attribute = "dst" if match.match_set_direction == "dst" else "src"
        checks.append(lambda v: ipset.contains(v.family, getattr(v, attribute)))

    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    frozen_checks = tuple(checks)

    def all_checks(v: _View) -> bool:
        return all(check(v) for check in frozen_checks)

    return all_checks


# --- the walk -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    index: TraceIndex
    family: int
    policies: Mapping[str, str]
    path: list[Step] = field(default_factory=list)
    matched: list[MatchedRule] = field(default_factory=list)
    zone: int | None = None
    notrack: bool = False
    ct_applied: bool = False

    def table(self, table: str, builtin: str, view: _View) -> tuple[str, Step | None]:
        """Walk one table from its built-in chain; returns (ACCEPT | DROP, deciding step)."""
        base = self.index.chain(self.family, table, builtin)
        policy = self.policies.get(builtin, ACCEPT).upper()
        if base is None:
            return policy, None
        stack: list[tuple[_ChainIndex, list[int] | tuple[int, ...], int, int]] = [
            (base, base.candidates(view), 0, 0)
        ]
        while stack:
            chain, candidates, cursor, previous = stack[-1]
            depth = len(stack) - 1
            if cursor >= len(candidates):
                stack.pop()
                end = len(chain.chain.rules) + 1
                skipped = end - previous - 1
                if not stack:
                    step = Step(
                        table, chain.chain.name, end, None, False, STEP_POLICY, skipped, depth
                    )
                    self.path.append(step)
                    return policy, step
                self.path.append(
                    Step(table, chain.chain.name, end, None, False, STEP_RETURN, skipped, depth)
                )
                continue
            position = candidates[cursor]
            stack[-1] = (chain, candidates, cursor + 1, position)
            rule = chain.chain.rules[position - 1]
            matcher = chain.matchers.get(position)
            if matcher is None:
                matcher = _compile_match(rule.match, self.index.sets)
                chain.matchers[position] = matcher
            hit = matcher(view)
            step = Step(
                table,
                chain.chain.name,
                position,
                rule,
                hit,
                STEP_RULE,
                position - previous - 1,
                depth,
            )
            self.path.append(step)
            if not hit:
                continue
            self.matched.append(MatchedRule(table, chain.chain.name, position, rule))
            target = rule.target
            if target in (ACCEPT, DROP):
                return target, step
            if target == RETURN:
                stack.pop()
                if not stack:
                    # RETURN in a built-in chain: the policy decides.
                    end = len(chain.chain.rules) + 1
                    policy_step = Step(table, chain.chain.name, end, None, False, STEP_POLICY, 0, 0)
                    self.path.append(policy_step)
                    return policy, policy_step
                continue
            if target == CT:
                self._conntrack(rule)
                continue
            if len(stack) >= _MAX_DEPTH:
                raise TraceError(f"jumps nest deeper than {_MAX_DEPTH} at {chain.chain.name}")
            callee = self.index.chain(self.family, table, target)
            if callee is None:
                raise TraceError(f"{chain.chain.name} rule {position} jumps to unknown {target}")
            stack.append((callee, callee.candidates(view), 0, 0))
        raise AssertionError("unreachable: the base chain's end returns")

    def _conntrack(self, rule: Rule) -> None:
        # xt_CT ignores a packet that already has a template: the first CT rule wins.
        if self.ct_applied:
            return
        self.ct_applied = True
        args = rule.target_args
        if "--notrack" in args:
            self.notrack = True
        if "--zone" in args:
            at = args.index("--zone")
            if at + 1 < len(args):
                self.zone = int(args[at + 1])


_RAW_CHAIN = {HOOK_FORWARD: "PREROUTING", HOOK_INPUT: "PREROUTING", HOOK_OUTPUT: "OUTPUT"}


def trace(
    compiled: CompiledHost,
    packet: Packet,
    *,
    index: TraceIndex | None = None,
    policies: Mapping[str, str] | None = None,
) -> Trace:
    """Walk `packet` through `compiled`'s raw and filter tables.

    `index` is `prepare(compiled)` when the caller keeps one; otherwise a small cache keyed by
    the CompiledHost's identity is used. `policies` maps a built-in chain to its policy when it
    is not ACCEPT (we never set policies, so the host's own apply).
    """
    if index is None:
        index = _prepared(compiled)
    elif index.compiled is not compiled:
        raise TraceError("the index was prepared for another CompiledHost")
    family = packet.family or 4
    walk = _Walk(index, family, policies or {})
    raw_view = _View(packet, RAW, packet.ct_state, index.sets)
    verdict, deciding = walk.table(RAW, _RAW_CHAIN[packet.hook], raw_view)
    state = CT_UNTRACKED if walk.notrack else packet.ct_state
    if verdict == ACCEPT:
        filter_view = _View(packet, FILTER, state, index.sets)
        verdict, deciding = walk.table(FILTER, packet.hook, filter_view)
    return Trace(
        packet=packet,
        family=family,
        verdict=verdict,
        path=tuple(walk.path),
        matched=tuple(walk.matched),
        deciding=deciding,
        ct_state=state,
        zone=walk.zone,
        notrack=walk.notrack,
    )


def _address_family(address: str) -> int:
    try:
        return ipaddress.ip_address(address).version
    except ValueError as error:
        raise TraceError(f"{address!r} is not an IP address") from error
