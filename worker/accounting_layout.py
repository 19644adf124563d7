"""What the accounting reader needs to know of a compiled state (issue 12), built once per apply.

Per chain of the filter table (the raw table holds conntrack zones, nothing to account): each
rule's identity (a digest of its text and its occurrence, so that a rule keeps its history when
others are inserted above it), its origin, and the chains it jumps to; plus the rules that
count the host-wide chains.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass

from sgweb.firewall.ir import ACCEPT, DROP, RETURN, Chain, CompiledHost, Rule
from sgweb.firewall.names import fallback_chain, forward_chain, input_chain, sg_chain
from sgweb.firewall.render import has_rules, rendered_chain
from sgweb.wire import accounting as wire

OriginKey = tuple[str, str | None, str | None, str | None, str]  # kind, rule, port, dir, verdict
ChainKey = str  # "family:table:chain"
# (chain, rule identities, their positions in the layout's chain; none for a built-in chain)
HostRules = tuple[str, tuple[str, ...], tuple[int, ...]]
ROOTS = ("FORWARD", "INPUT", "OUTPUT")  # built-in chains: where packets enter ours
TABLE = "filter"


def chain_key(family: int, chain: str, table: str = TABLE) -> ChainKey:
    return f"{family}:{table}:{chain}"


@dataclass(frozen=True, slots=True)
class ChainLayout:
    family: int
    name: str
    identities: tuple[str, ...]  # per position
    origins: tuple[int, ...]  # per position, an index into Layout.origin_keys
    jumps: tuple[tuple[int, ChainKey], ...]  # (position, key of the owned chain it jumps to)


@dataclass(frozen=True, slots=True)
class Layout:
    chains: dict[ChainKey, ChainLayout]
    origin_keys: tuple[OriginKey, ...]
    owned: frozenset[str]  # names of our chains (both families)
    # host chain -> the rules whose counts add up to it, per chain; "jump:<chain>" is the
    # identity of a built-in chain's jumps into one of ours
    host_rules: dict[str, tuple[HostRules, ...]]


def verdict_of(rule: Rule, fallback: str) -> str:
    """Whether a rule ends a packet's way through a port's chains, and how."""
    if rule.target == DROP or rule.target == fallback:
        return wire.DROP
    if rule.target in (ACCEPT, RETURN) and rule.origin.kind != "anti-spoofing":
        return wire.ACCEPT if rule.origin.port_id else wire.PASS
    return wire.PASS


def identities(lines: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for line in lines:
        digest = f"{zlib.crc32(line.encode()):08x}"
        seen[digest] += 1
        out.append(f"{digest}.{seen[digest]}")
    return tuple(out)


class LayoutBuilder:
    """Builds layouts, reusing the part of every chain object it has seen before.

    The compile cache hands back unchanged chains as the very same objects, and origin keys keep
    their index for the builder's life, so after an apply only the chains it changed are
    looked at (a 1000-port host's full build makes every lazy rule: about a second).
    """

    def __init__(self) -> None:
        self.keys: dict[OriginKey, int] = {}
        self._chains: dict[int, tuple[Chain, ChainLayout]] = {}

    def build(self, compiled: CompiledHost) -> Layout:
        prefix = compiled.chain_prefix
        fallback = fallback_chain(prefix)
        owned = frozenset(
            chain.name
            for family in (4, 6)
            for table in compiled.family(family).tables
            for chain in table.chains
            if chain.owned
        )
        chains: dict[ChainKey, ChainLayout] = {}
        seen: dict[int, tuple[Chain, ChainLayout]] = {}
        for family in (4, 6):
            table = compiled.family(family).table(TABLE)
            if table is None:
                continue
            for chain in table.chains:
                if not chain.owned or not has_rules(chain):
                    continue
                cached = self._chains.get(id(chain))
                if cached is None or cached[0] is not chain or cached[1].family != family:
                    cached = (chain, self._chain(family, chain, owned, fallback))
                seen[id(chain)] = cached
                chains[chain_key(family, chain.name)] = cached[1]
        self._chains = seen
        return Layout(chains, tuple(self.keys), owned, _host_rules(chains, prefix))

    def _chain(
        self, family: int, chain: Chain, owned: frozenset[str], fallback: str
    ) -> ChainLayout:
        ids = identities(rendered_chain(chain).split("\n"))
        origins, jumps = [], []
        keys = self.keys
        for position, rule in enumerate(chain.rules):
            origin = rule.origin
            key = (origin.kind, origin.rule_id, origin.port_id, origin.direction,
                   verdict_of(rule, fallback))  # fmt: skip
            origins.append(keys.setdefault(key, len(keys)))
            if rule.target in owned:
                jumps.append((position, chain_key(family, rule.target)))
        return ChainLayout(family, chain.name, ids, tuple(origins), tuple(jumps))


def _host_rules(
    chains: dict[ChainKey, ChainLayout], prefix: str
) -> dict[str, tuple[HostRules, ...]]:
    rules: dict[str, list[HostRules]] = {name: [] for name in wire.HOST_CHAINS}
    for family in (4, 6):
        for name, root, target in (
            (wire.HOST_FORWARD, "FORWARD", forward_chain(prefix)),
            (wire.HOST_INPUT, "INPUT", input_chain(prefix)),
        ):
            rules[name].append((chain_key(family, root), ("jump:" + target,), ()))
        wrapper = chains.get(chain_key(family, forward_chain(prefix)))
        if wrapper is not None:
            into = chain_key(family, sg_chain(prefix))
            positions = tuple(position for position, target in wrapper.jumps if target == into)
            ids = tuple(wrapper.identities[position] for position in positions)
            rules[wire.HOST_SG_CHAIN].append((chain_key(family, wrapper.name), ids, positions))
        fallback = chains.get(chain_key(family, fallback_chain(prefix)))
        if fallback is not None:
            rules[wire.HOST_FALLBACK].append((
                chain_key(family, fallback.name), fallback.identities,
                tuple(range(len(fallback.identities))),
            ))  # fmt: skip
    return {name: tuple(found) for name, found in rules.items()}


def build_layout(compiled: CompiledHost) -> Layout:
    """A layout from scratch (tests, tools); the agent keeps a `LayoutBuilder`."""
    return LayoutBuilder().build(compiled)
