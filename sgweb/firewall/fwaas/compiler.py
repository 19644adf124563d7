"""Compile one router's firewall groups into its namespace's filter table (issue 16).

The layout is neutron-fwaas's iptables v2 driver under the L3 agent's iptables manager, so an
operator who knows Neutron reads our dump as theirs:

- the built-in FORWARD jumps to `neutron-filter-top` and to the wrapped `neutron-l3-agent-FORWARD`
  (wrapped names are `neutron-l3-agent-` + at most 11 characters of the short name);
- per firewall group and family two chains, `iv4<id>` (ingress) and `ov4<id>` (egress)
  (`iv6` / `ov6` for IPv6), each starting with INVALID -> `dropped` and RELATED,ESTABLISHED ->
  ACCEPT, then the enabled rules of the direction's policy in order, allow -> `accepted`,
  deny -> `dropped`, reject -> `rejected`;
- in `neutron-l3-agent-FORWARD`, per group: `-o qr-…` jumps to the ingress chain (what enters the
  tenant network leaves the router by its interface), `-i qr-…` to the egress chain, then the
  same interfaces jump to `fwaas-default-policy`, which drops: first match wins, no match drops;
- a group with admin_state_up false gets only the jumps to the default drop (Neutron: "does not
  forward packets"); a group without a policy for a direction has an empty chain for it, so
  only replies (ESTABLISHED) pass that way, as the driver does.

Groups come in id order and ports in id order, so the output depends on nothing but the state.
The rule text is what `iptables-save` prints back, so a dump compares equal (drift checks).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache

from sgweb.firewall.fwaas.model import (
    ALLOW,
    DENY,
    REJECT,
    FirewallGroup,
    FirewallPolicy,
    FirewallRule,
    NetworkNodeState,
    RouterInterface,
    RouterState,
)
from sgweb.firewall.fwaas.validate import (
    parse_network,
    parse_port_range,
    validate_policy_rules,
    validate_router_state,
)

FAMILIES = (4, 6)
INGRESS = "ingress"
EGRESS = "egress"
DIRECTIONS = (INGRESS, EGRESS)

BINARY_NAME = "neutron-l3-agent"
MAX_WRAPPED = 11  # Neutron's MAX_IPTABLES_CHAIN_LEN_WRAP: 28 minus "neutron-l3-agent-"
FILTER_TOP = "neutron-filter-top"
BUILTIN = ("INPUT", "FORWARD", "OUTPUT")


def wrap(name: str) -> str:
    return f"{BINARY_NAME}-{name[:MAX_WRAPPED]}"


FORWARD_CHAIN = wrap("FORWARD")
LOCAL_CHAIN = wrap("local")
ACCEPTED_CHAIN = wrap("accepted")
DROPPED_CHAIN = wrap("dropped")
REJECTED_CHAIN = wrap("rejected")
DEFAULT_CHAIN = wrap("fwaas-default-policy")

ACTION_CHAIN = {ALLOW: ACCEPTED_CHAIN, DENY: DROPPED_CHAIN, REJECT: REJECTED_CHAIN}
REJECT_WITH = {4: "icmp-port-unreachable", 6: "icmp6-port-unreachable"}
# Neutron's ingress is toward the tenant network: out of the router by the interface.
DIRECTION_OPTION = {INGRESS: "-o", EGRESS: "-i"}

INVALID_RULE = f"-m state --state INVALID -j {DROPPED_CHAIN}"
ESTABLISHED_RULE = "-m state --state RELATED,ESTABLISHED -j ACCEPT"
PREAMBLE = (INVALID_RULE, ESTABLISHED_RULE)  # the first two rules of every policy chain


def policy_chain(group_id: str, family: int, direction: str) -> str:
    prefix = "i" if direction == INGRESS else "o"
    return wrap(f"{prefix}v{family}{group_id}")


@dataclass(frozen=True, slots=True)
class RuleOrigin:
    """Where a kernel rule of a policy chain comes from: enough to name it in words."""

    group_id: str
    group_name: str
    policy_id: str
    policy_name: str
    direction: str
    rule_id: str
    rule_name: str
    position: int  # 1-based, in the policy (disabled rules count, as the API shows them)
    action: str


@dataclass(frozen=True, slots=True)
class Jump:
    """One rule of neutron-l3-agent-FORWARD: an interface (by -i or -o) to a chain."""

    option: str  # "-i" | "-o"
    device: str
    target: str
    group: FirewallGroup
    interface: RouterInterface
    direction: str  # INGRESS | EGRESS: which side of the group this jump serves
    default: bool  # True: the jump to fwaas-default-policy

    @property
    def spec(self) -> str:
        return f"{self.option} {self.device} -j {self.target}"


# One policy chain's origins, unmade: (chain, group, direction, policy, its rules in the chain as
# (position in the policy, rule)).
OriginSource = tuple[str, FirewallGroup, str, FirewallPolicy, tuple[tuple[int, FirewallRule], ...]]


class Origins(Mapping[tuple[str, int], RuleOrigin]):
    """(chain, rule index) -> RuleOrigin, made on first use: only counters and traces read
    origins, and a change of a policy on 50 routers would otherwise make an object per rule,
    group and direction for each apply (thousands) that nobody reads."""

    __slots__ = ("_made", "_sources")

    def __init__(self, sources: tuple[OriginSource, ...]) -> None:
        self._sources = sources
        self._made: dict[tuple[str, int], RuleOrigin] | None = None

    def _origins(self) -> dict[tuple[str, int], RuleOrigin]:
        if self._made is None:
            made = {}
            for chain, group, direction, policy, picked in self._sources:
                for index, (position, rule) in enumerate(picked, start=len(PREAMBLE)):
                    made[(chain, index)] = RuleOrigin(
                        group.id, group.name, policy.id, policy.name, direction,
                        rule.id, rule.name, position, rule.action,
                    )  # fmt: skip
            self._made = made
        return self._made

    def __getitem__(self, key: tuple[str, int]) -> RuleOrigin:
        return self._origins()[key]

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._origins())

    def __len__(self) -> int:
        return sum(len(source[4]) for source in self._sources)


@dataclass(frozen=True, slots=True)
class CompiledFamily:
    family: int
    chains: tuple[tuple[str, tuple[str, ...]], ...]  # (name, rule specs), sorted by name
    jumps: tuple[Jump, ...]  # neutron-l3-agent-FORWARD, in order
    origins: Mapping[tuple[str, int], RuleOrigin] = field(hash=False, compare=False)

    def chain(self, name: str) -> tuple[str, ...]:
        return dict(self.chains)[name]


@dataclass(frozen=True, slots=True)
class CompiledRouter:
    router_id: str
    namespace: str
    families: tuple[CompiledFamily, ...]

    def family(self, family: int) -> CompiledFamily:
        return next(f for f in self.families if f.family == family)


def groups_on_router(state: RouterState) -> Iterator[tuple[FirewallGroup, list[RouterInterface]]]:
    """Each group (id order) with its interfaces on this router (port id order); groups with
    none are left out, as Neutron applies a group only where it has ports."""
    # A dual-stack port is one interface per subnet; the first by subnet id stands for it.
    interfaces: dict[str, RouterInterface] = {}
    for interface in sorted(state.router.interfaces, key=lambda i: i.subnet_id, reverse=True):
        interfaces[interface.port_id] = interface
    for group in sorted(state.firewall_groups, key=lambda g: g.id):
        mine = [interfaces[p] for p in sorted(set(group.ports)) if p in interfaces]
        if mine:
            yield group, mine


def forward_jumps(state: RouterState, family: int) -> list[Jump]:
    """neutron-l3-agent-FORWARD's rules; the tracer walks this same list."""
    jumps: list[Jump] = []
    for group, interfaces in groups_on_router(state):
        if group.admin_state_up:
            for direction in DIRECTIONS:
                target = policy_chain(group.id, family, direction)
                option = DIRECTION_OPTION[direction]
                for interface in interfaces:
                    jumps.append(
                        Jump(option, interface.device, target, group, interface, direction, False)
                    )
        for direction in DIRECTIONS:
            option = DIRECTION_OPTION[direction]
            for interface in interfaces:
                jumps.append(
                    Jump(option, interface.device, DEFAULT_CHAIN, group, interface, direction, True)
                )
    return jumps


def policy_of(group: FirewallGroup, direction: str) -> FirewallPolicy | None:
    return group.ingress_policy if direction == INGRESS else group.egress_policy


@lru_cache(maxsize=65536)
def rule_spec(rule: FirewallRule) -> str:
    """One firewall rule as iptables-save prints it (-s -d -p -m proto --sport --dport -j)."""
    parts: list[str] = []
    for option, value in (("-s", rule.source_ip_address), ("-d", rule.destination_ip_address)):
        if value is not None:
            network = parse_network(value)
            if network.prefixlen:
                parts.append(f"{option} {network}")
    if rule.protocol is not None:
        protocol = (
            "ipv6-icmp" if rule.protocol == "icmp" and rule.ip_version == 6 else rule.protocol
        )
        parts.append(f"-p {protocol}")
    if rule.protocol in ("tcp", "udp") and (rule.source_port or rule.destination_port):
        parts.append(f"-m {rule.protocol}")
        for option, value in (("--sport", rule.source_port), ("--dport", rule.destination_port)):
            if value is not None:
                low, high = parse_port_range(value)
                parts.append(f"{option} {low}" if low == high else f"{option} {low}:{high}")
    parts.append(f"-j {ACTION_CHAIN[rule.action]}")
    return " ".join(parts)


class PolicyMemo:
    """One compile pass's policies, each validated once and rendered once per family: one
    policy on the groups of 50 routers is otherwise checked and rendered 100 times (both
    directions) per change. Keyed by the policy object, which the agent's decode makes once
    per policy for every group naming it (an equal copy is merely rendered again); the
    object is kept, so its id cannot be reused while the memo lives."""

    __slots__ = ("_chains", "_checked")

    def __init__(self) -> None:
        self._checked: dict[int, FirewallPolicy] = {}
        self._chains: dict[tuple[int, int], tuple[FirewallPolicy, PolicyChain]] = {}

    def check(self, policy: FirewallPolicy) -> None:
        if self._checked.get(id(policy)) is not policy:
            validate_policy_rules(policy)
            self._checked[id(policy)] = policy

    def chain(self, policy: FirewallPolicy | None, family: int) -> PolicyChain:
        if policy is None:
            return EMPTY_POLICY_CHAIN
        known = self._chains.get((id(policy), family))
        if known is not None and known[0] is policy:
            return known[1]
        made = _policy_chain(policy, family)
        self._chains[(id(policy), family)] = (policy, made)
        return made


@dataclass(frozen=True, slots=True)
class PolicyChain:
    """A policy's chain body in one family: the preamble and its enabled rules' specs, and
    which rule of the policy each is (position, rule), for the origins."""

    specs: tuple[str, ...]
    picked: tuple[tuple[int, FirewallRule], ...]


EMPTY_POLICY_CHAIN = PolicyChain(PREAMBLE, ())


def _policy_chain(policy: FirewallPolicy, family: int) -> PolicyChain:
    picked = tuple(
        (position, rule)
        for position, rule in enumerate(policy.rules, start=1)
        if rule.enabled and rule.ip_version == family
    )
    return PolicyChain((*PREAMBLE, *(rule_spec(rule) for _, rule in picked)), picked)


def compile_router(state: RouterState, memo: PolicyMemo | None = None) -> CompiledRouter:
    """The router namespace's filter table, per family. Raises FirewallError for bad input.
    Routers compiled with one `memo` share their policies' validation and rendering."""
    memo = memo or PolicyMemo()
    validate_router_state(state, memo.check)
    return CompiledRouter(
        router_id=state.router.id,
        namespace=state.router.namespace,
        families=tuple(_compile_family(state, family, memo) for family in FAMILIES),
    )


def compile_network_node(
    state: NetworkNodeState, memo: PolicyMemo | None = None
) -> dict[str, CompiledRouter]:
    """Every router of a network node, by router id (each has its own namespace)."""
    memo = memo or PolicyMemo()
    return {router.router.id: compile_router(router, memo) for router in state.routers}


def _compile_family(state: RouterState, family: int, memo: PolicyMemo) -> CompiledFamily:
    jumps = forward_jumps(state, family)
    chains: dict[str, tuple[str, ...]] = {
        FILTER_TOP: (f"-j {LOCAL_CHAIN}",),
        LOCAL_CHAIN: (),
        FORWARD_CHAIN: tuple(jump.spec for jump in jumps),
        ACCEPTED_CHAIN: ("-j ACCEPT",),
        DROPPED_CHAIN: ("-j DROP",),
        REJECTED_CHAIN: (f"-j REJECT --reject-with {REJECT_WITH[family]}",),
        DEFAULT_CHAIN: (f"-j {DROPPED_CHAIN}",),
    }
    sources: list[OriginSource] = []
    for group, _interfaces in groups_on_router(state):
        if not group.admin_state_up:
            continue
        for direction in DIRECTIONS:
            name = policy_chain(group.id, family, direction)
            policy = policy_of(group, direction)
            body = memo.chain(policy, family)
            chains[name] = body.specs
            if policy is not None and body.picked:
                sources.append((name, group, direction, policy, body.picked))
    return CompiledFamily(
        family, tuple(sorted(chains.items())), tuple(jumps), Origins(tuple(sources))
    )


# -- rendering ---------------------------------------------------------------------------------

BUILTIN_RULES = (("FORWARD", f"-j {FILTER_TOP}"), ("FORWARD", f"-j {FORWARD_CHAIN}"))


def render_full(compiled: CompiledFamily) -> str:
    """The whole filter table for `iptables-restore` without --noflush: the router namespace's
    filter table is ours alone, as the L3 agent's iptables manager treats it."""
    lines = ["*filter"]
    lines += [f":{name} ACCEPT [0:0]" for name in BUILTIN]
    lines += [f":{name} - [0:0]" for name, _specs in compiled.chains]
    lines += [f"-A {chain} {spec}" for chain, spec in BUILTIN_RULES]
    for name, specs in compiled.chains:
        lines += [f"-A {name} {spec}" for spec in specs]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def render_delta(previous: CompiledFamily, new: CompiledFamily) -> str:
    """`iptables-restore --noflush` input taking `previous` to `new`: a changed chain is edited
    in place (`-D N` for rules that went, bottom up; `-I N` for rules that came, top down) so
    the rules that stay keep their counters (the live counters per firewall rule); a chain
    that keeps none of its rules, and a new chain, is declared (which flushes it) and filled;
    a chain that went away is flushed and deleted after the jumps to it were edited away.
    "" when nothing changed. Built-in chains are never touched after the first full apply."""
    old = dict(previous.chains)
    now = dict(new.chains)
    declared: list[str] = []
    rules: list[str] = []
    for name, specs in new.chains:
        before = old.get(name)
        if before == specs:
            continue
        edits = in_place_edits(name, before, specs) if before else None
        if edits is None:
            declared.append(f":{name} - [0:0]")
            rules += [f"-A {name} {spec}" for spec in specs]
        else:
            rules += edits
    removed = sorted(name for name in old if name not in now)
    if not declared and not rules and not removed:
        return ""
    lines = ["*filter", *declared, *(f":{name} - [0:0]" for name in removed), *rules]
    lines += [f"-X {name}" for name in removed]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def in_place_edits(name: str, old: tuple[str, ...], new: tuple[str, ...]) -> list[str] | None:
    """-D/-I lines keeping a longest common subsequence of the rules; None if none is kept.
    Deleting bottom-up leaves exactly the kept rules in order; inserting top-down then puts
    each new rule at its final position, since every position above it is final already."""
    script = _edit_script(old, new)
    if script is None:
        return None
    deleted, inserted = script
    lines = [f"-D {name} {i + 1}" for i in deleted]
    lines += [f"-I {name} {i + 1} {new[i]}" for i in inserted]
    return lines


@lru_cache(maxsize=256)
def _edit_script(
    old: tuple[str, ...], new: tuple[str, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(indexes of `old` to delete, bottom up; indexes of `new` to insert, top down), or None.
    By content, not chain name: a policy on 50 routers' groups makes the same edit in 100
    chains (both directions), and the rollback's reverse edit once more, per change."""
    matcher = SequenceMatcher(None, old, new, autojunk=False)
    kept_old: set[int] = set()
    kept_new: set[int] = set()
    for block in matcher.get_matching_blocks():
        kept_old.update(range(block.a, block.a + block.size))
        kept_new.update(range(block.b, block.b + block.size))
    if not kept_old:
        return None
    deleted = tuple(i for i in reversed(range(len(old))) if i not in kept_old)
    inserted = tuple(i for i in range(len(new)) if i not in kept_new)
    return deleted, inserted
