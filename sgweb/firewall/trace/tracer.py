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

from collections.abc import Mapping
from dataclasses import dataclass, field

from sgweb.firewall.ir import ACCEPT, CT, DROP, NFLOG, RETURN, CompiledHost, Origin, Rule
from sgweb.firewall.trace.ctstate import classify
from sgweb.firewall.trace.index import ChainIndex, TraceIndex, prepare, prepared
from sgweb.firewall.trace.match import FILTER, RAW, PacketView, compile_match
from sgweb.firewall.trace.packet import (
    CT_ESTABLISHED,
    CT_INVALID,
    CT_NEW,
    CT_RELATED,
    CT_STATES,
    CT_UNTRACKED,
    HOOK_FORWARD,
    HOOK_INPUT,
    HOOK_OUTPUT,
    HOOKS,
    PROTOCOL_NUMBERS,
    Packet,
    TraceError,
    protocol_number,
)

# What a step of the path is: a rule tried, the end of a user chain reached (an implicit
# RETURN, which legacy TRACE prints as "return"), or a built-in chain's policy applied.
STEP_RULE = "rule"
STEP_RETURN = "return"
STEP_POLICY = "policy"

_MAX_DEPTH = 64  # the kernel refuses loops at load; a bad hand-made IR must not hang us


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
    # Why the filter table saw another state than the packet's own (conntrack refused it or
    # leaves it untracked: see ctstate); None when it saw the packet's state.
    ct_reason: str | None = None

    @property
    def origin(self) -> Origin | None:
        return self.deciding.origin if self.deciding is not None else None

    @property
    def matched_keys(self) -> tuple[tuple[str, str, int], ...]:
        return tuple(hit.key for hit in self.matched)

    @property
    def skipped(self) -> int:
        return sum(step.skipped for step in self.path)


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

    def table(self, table: str, builtin: str, view: PacketView) -> tuple[str, Step | None]:
        """Walk one table from its built-in chain; returns (ACCEPT | DROP, deciding step)."""
        base = self.index.chain(self.family, table, builtin)
        policy = self.policies.get(builtin, ACCEPT).upper()
        if base is None:
            return policy, None
        stack: list[tuple[ChainIndex, list[int] | tuple[int, ...], int, int]] = [
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
                matcher = compile_match(rule.match, self.index.sets)
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
            if target == NFLOG:
                continue  # a copy to the packet log; the packet goes on
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
        index = prepared(compiled)
    elif index.compiled is not compiled:
        raise TraceError("the index was prepared for another CompiledHost")
    family = packet.family or 4
    walk = _Walk(index, family, policies or {})
    raw_view = PacketView(packet, RAW, packet.ct_state, index.sets)
    verdict, deciding = walk.table(RAW, _RAW_CHAIN[packet.hook], raw_view)
    state, reason = CT_UNTRACKED, None
    if not walk.notrack:
        state, reason = classify(packet, packet.ct_state)
    if verdict == ACCEPT:
        filter_view = PacketView(packet, FILTER, state, index.sets)
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
        ct_reason=reason,
    )


__all__ = [
    "CT_ESTABLISHED",
    "CT_INVALID",
    "CT_NEW",
    "CT_RELATED",
    "CT_STATES",
    "CT_UNTRACKED",
    "FILTER",
    "HOOKS",
    "HOOK_FORWARD",
    "HOOK_INPUT",
    "HOOK_OUTPUT",
    "PROTOCOL_NUMBERS",
    "RAW",
    "STEP_POLICY",
    "STEP_RETURN",
    "STEP_RULE",
    "MatchedRule",
    "Packet",
    "Step",
    "Trace",
    "TraceError",
    "TraceIndex",
    "prepare",
    "protocol_number",
    "trace",
]
