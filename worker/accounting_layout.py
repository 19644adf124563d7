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

from sgweb.firewall.ir import ACCEPT, DROP, RETURN, CompiledHost, Rule
from sgweb.firewall.names import fallback_chain, forward_chain, input_chain, sg_chain
from sgweb.firewall.render import rendered_chain
from sgweb.wire import accounting as wire

OriginKey = tuple[str, str | None, str | None, str | None, str]  # kind, rule, port, dir, verdict
ChainKey = str  # "family:table:chain"
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
    jumps: tuple[tuple[int, str], ...]  # (position, owned chain it jumps to)


@dataclass(frozen=True, slots=True)
class Layout:
    chains: dict[ChainKey, ChainLayout]
    origin_keys: tuple[OriginKey, ...]
    owned: frozenset[str]  # names of our chains (both families)
    # host chain -> [(chain key, rule identity)] whose counts add up to it; "jump:<chain>" is
    # the identity of a built-in chain's jumps into one of ours
    host_rules: dict[str, tuple[tuple[ChainKey, str], ...]]


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


def build_layout(compiled: CompiledHost) -> Layout:
    prefix = compiled.chain_prefix
    fallback = fallback_chain(prefix)
    keys: dict[OriginKey, int] = {}
    chains: dict[ChainKey, ChainLayout] = {}
    owned = {
        chain.name
        for family in (4, 6)
        for table in compiled.family(family).tables
        for chain in table.chains
        if chain.owned
    }
    host_rules: dict[str, list[tuple[ChainKey, str]]] = {name: [] for name in wire.HOST_CHAINS}
    for family in (4, 6):
        table = compiled.family(family).table(TABLE)
        if table is None:
            continue
        for root, host_chain, target in (
            ("FORWARD", wire.HOST_FORWARD, forward_chain(prefix)),
            ("INPUT", wire.HOST_INPUT, input_chain(prefix)),
        ):
            host_rules[host_chain].append((chain_key(family, root), "jump:" + target))
        for chain in table.chains:
            if not chain.owned or not chain.rules:
                continue
            ids = identities(rendered_chain(chain).split("\n"))
            origins, jumps = [], []
            for position, rule in enumerate(chain.rules):
                origin = rule.origin
                key = (origin.kind, origin.rule_id, origin.port_id, origin.direction,
                       verdict_of(rule, fallback))  # fmt: skip
                origins.append(keys.setdefault(key, len(keys)))
                if rule.target in owned:
                    jumps.append((position, rule.target))
                    if rule.target == sg_chain(prefix) and chain.name == forward_chain(prefix):
                        host_rules[wire.HOST_SG_CHAIN].append(
                            (chain_key(family, chain.name), ids[position])
                        )
                if chain.name == fallback:
                    host_rules[wire.HOST_FALLBACK].append(
                        (chain_key(family, chain.name), ids[position])
                    )
            chains[chain_key(family, chain.name)] = ChainLayout(
                family, chain.name, ids, tuple(origins), tuple(jumps)
            )
    return Layout(
        chains,
        tuple(keys),
        frozenset(owned),
        {name: tuple(rules) for name, rules in host_rules.items()},
    )
