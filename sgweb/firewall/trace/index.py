"""A compiled host prepared for many traces: chains by name, physdev keys, parsed ipsets."""

from __future__ import annotations

from dataclasses import dataclass, field

from sgweb.firewall.ir import Chain, CompiledHost, IpSet
from sgweb.firewall.trace.match import Matcher, PacketView, SetIndex


def is_wildcard(name: str) -> bool:
    return name.endswith("+")


class ChainIndex:
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
            if match.physdev_in is not None and not is_wildcard(match.physdev_in):
                by_in.setdefault(match.physdev_in, []).append(position)
            elif match.physdev_out is not None and not is_wildcard(match.physdev_out):
                by_out.setdefault(match.physdev_out, []).append(position)
            else:
                unkeyed.append(position)
        self.unkeyed = tuple(unkeyed)
        self.by_in = {name: tuple(positions) for name, positions in by_in.items()}
        self.by_out = {name: tuple(positions) for name, positions in by_out.items()}
        self.matchers: dict[int, Matcher] = {}

    def candidates(self, view: PacketView) -> list[int] | tuple[int, ...]:
        keyed_in = self.by_in.get(view.physin, ()) if view.physin is not None else ()
        keyed_out = self.by_out.get(view.physout, ()) if view.physout is not None else ()
        if not keyed_in and not keyed_out:
            return self.unkeyed
        return sorted((*self.unkeyed, *keyed_in, *keyed_out))


@dataclass(slots=True)
class TraceIndex:
    """A compiled host prepared for tracing; build once with `prepare`, reuse for every
    packet. Only chain names are indexed up front: a chain's physdev index, its rule matchers
    and an ipset's parsed members are built the first time a walk needs them, so preparing a
    50k-rule host costs little more than listing its chains."""

    compiled: CompiledHost
    raw_chains: dict[tuple[int, str, str], Chain] = field(default_factory=dict)
    raw_sets: dict[str, IpSet] = field(default_factory=dict)
    chains: dict[tuple[int, str, str], ChainIndex] = field(default_factory=dict)
    sets: _LazySets = field(default_factory=lambda: _LazySets({}))

    def chain(self, family: int, table: str, name: str) -> ChainIndex | None:
        key = (family, table, name)
        indexed = self.chains.get(key)
        if indexed is None:
            chain = self.raw_chains.get(key)
            if chain is None:
                return None
            indexed = self.chains[key] = ChainIndex(table, chain)
        return indexed


class _LazySets(dict[str, SetIndex]):
    """Parsed ipsets by name, parsed on first lookup."""

    def __init__(self, ipsets: dict[str, IpSet]) -> None:
        super().__init__()
        self.ipsets = ipsets

    def __missing__(self, name: str) -> SetIndex:
        ipset = self.ipsets[name]
        parsed = SetIndex(6 if ipset.family == "inet6" else 4, ipset.members)
        self[name] = parsed
        return parsed

    def get(self, name: str, default: SetIndex | None = None) -> SetIndex | None:  # type: ignore[override]
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


def prepared(compiled: CompiledHost) -> TraceIndex:
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
