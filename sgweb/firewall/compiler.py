"""Compile a host's desired state into the article's iptables layout (Neutron's hybrid driver).

Layout and order follow the article (3.3.1-3.3.4); what it does not show (IPv6, conntrack zones,
stateless groups, port security off) follows current Neutron's iptables_firewall.py, and so does
the DHCP order unless `HostState.compat` asks for the article's (see compiled_rules).

Speed: a host of 500 ports is ~25k rules, so the work per rule must be a few hundred ns.
Everything that does not depend on the port (a group rule's Match) is built once per group and
shared; per-port chains are reused from a `CompileCache` when their inputs are the very same
objects, which also lets `incremental.diff` skip unchanged chains by identity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import cast

from sgweb.firewall import hostchains, names
from sgweb.firewall.compiled_rules import (
    _LINK_LOCAL,
    _ORIGIN_SLOTS,
    _RULE_SLOTS,
    NO_MATCH,
    PortContext,
    gc_paused,
    new_origin,
    new_rule,
)
from sgweb.firewall.conntrack import assign_zones, raw_chains
from sgweb.firewall.hostchains import HostChains
from sgweb.firewall.ir import (
    DROP,
    ORIGIN_FALLBACK,
    ORIGIN_JUMP,
    Chain,
    CompiledFamily,
    CompiledHost,
    IpSet,
    Match,
    Table,
    ipset_token,
)
from sgweb.firewall.memberipsets import (
    members_only,
    new_ipset,
    same_entries,
    set_edit,
    sorted_members,
)
from sgweb.firewall.model import (
    EGRESS,
    INGRESS,
    IPV4,
    IPV6,
    HostState,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)
from sgweb.firewall.packetlog import PortLog
from sgweb.firewall.portchains import (
    _DHCP_REPLY_MATCHES,
    PortChainBuilder,
    PortChainPrototype,
    Template,
    has_member_templates,
    merge_templates,
    prototype_key,
    rule_match,
    same_templates,
    sg_rule_comment,
)
from sgweb.firewall.setentries import (
    Entries,
)
from sgweb.firewall.validate import (
    ValidationMemo,
    address_version,
    validate_host_state,
)

(_set_chain, _set_match, _set_target, _set_origin, _set_args, _set_comment) = _RULE_SLOTS
(_set_kind, _set_port, _set_direction, _set_group, _set_rule, _set_member) = _ORIGIN_SLOTS
_new = object.__new__

MATCH_CACHE_LIMIT = 100_000
FAMILIES = (4, 6)
FAMILY_BY_ETHERTYPE = {IPV4: 4, IPV6: 6}


@dataclass(slots=True)
class _GroupEntry:
    group: SecurityGroup
    context: tuple[object, ...]
    # (family, direction) -> templates in rule order
    templates: dict[tuple[int, str], tuple[Template, ...]]


@dataclass(slots=True)
class _PortEntry:
    port: Port
    key: tuple[object, ...]
    chains: tuple[Chain, ...]


@dataclass
class CompileCache:
    """Memory between compiles of one host, so that a change recompiles only what it touches.

    Keep one per host (the agent) or per benchmark run; `compile_host(state, cache=...)`.
    """

    validation: ValidationMemo = field(default_factory=ValidationMemo)
    matches: dict[tuple[object, ...], Match] = field(default_factory=dict)
    groups: dict[str, _GroupEntry] = field(default_factory=dict)
    ports: dict[tuple[str, int], _PortEntry] = field(default_factory=dict)
    shared: dict[tuple[object, ...], tuple[tuple[object, ...], object]] = field(
        default_factory=dict
    )
    sorted_members: dict[tuple[str, ...], tuple[Entries, Entries]] = field(default_factory=dict)
    # group id -> its members as last sorted (the validation's `MemberState`, or the tuple;
    # as a set if one was made; the sorted entries, maybe with edits pending: `setentries`),
    # so that a port joining a group of thousands re-sorts and copies nothing (see
    # `_entries_edited`)
    last_members: dict[str, tuple[object, frozenset[str] | None, Entries, Entries]] = field(
        default_factory=dict
    )
    # id(entries) -> (entries, the entries they were edited from, gained, lost): this compile's
    # edits of sorted entries, for the sets made from them (`set_edit`, `IpSet.edit`)
    set_edits: dict[int, tuple[Entries, Entries, tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=dict
    )
    ipsets: dict[str, IpSet] = field(default_factory=dict)
    last: tuple[HostState, CompiledHost] | None = None  # the last compile's input and output
    # (family, direction, group ids) -> (the groups' template tuples, merged)
    merged: dict[tuple[object, ...], tuple[tuple[object, ...], tuple[Template, ...]]] = field(
        default_factory=dict
    )

    def forget_all_but(self, port_ids: set[str], group_ids: set[str], ipsets: set[str]) -> None:
        """Drop what the last compile no longer used, so a long-lived agent's cache stays the
        size of its host."""
        for key in [key for key in self.ports if key[0] not in port_ids]:
            del self.ports[key]
        for group_id in [gid for gid in self.groups if gid not in group_ids]:
            del self.groups[group_id]
        for name in [name for name in self.ipsets if name not in ipsets]:
            del self.ipsets[name]
        if len(self.matches) > MATCH_CACHE_LIMIT:
            self.matches.clear()  # rebuilt on demand; chains then compare by content once
        if len(self.merged) > 4 * len(port_ids) + 64:
            self.merged.clear()
        if len(self.sorted_members) > len(ipsets) * 4 + 64:
            self.sorted_members.clear()
        self.validation.forget_all_but(port_ids, group_ids)

    def reuse(self, slot: tuple[object, ...], key: tuple[object, ...]) -> object | None:
        entry = self.shared.get(slot)
        if entry is not None and entry[0] == key:
            return entry[1]
        return None

    def remember(self, slot: tuple[object, ...], key: tuple[object, ...], value: object) -> None:
        self.shared[slot] = (key, value)


def compile_host(state: HostState, *, cache: CompileCache | None = None) -> CompiledHost:
    """The host's complete firewall (both families, raw + filter tables, ipsets).

    Raises FirewallError for input the kernel would refuse. The same input always gives equal
    output; with a cache, unchanged chains are the very same objects as last time.
    """
    cache = cache if cache is not None else CompileCache()
    cache.set_edits.clear()
    with gc_paused():
        compiled = members_only(state, cache)
        if compiled is None:
            compiled = _HostCompiler(
                validate_host_state(state, memo=cache.validation), cache
            ).compile()
        edits = tuple(
            (gid, edit.given_before, edit.given_after, edit.removed)
            for gid, edit in cache.validation.members.edits.items()
        )
        if edits or compiled.member_edits:
            compiled = dataclasses.replace(compiled, member_edits=edits)
        cache.last = (state, compiled)
        return compiled


def port_is_stateful(port: Port, groups: Mapping[str, SecurityGroup]) -> bool:
    """Whether the port's chains track connections (`groups`: the host's groups by id)."""
    # Neutron's stateless groups: a port is stateless only when all its groups are.
    if not port.security_groups:
        return True
    return any(groups[gid].stateful for gid in port.security_groups)


class _HostCompiler:
    def __init__(self, state: HostState, cache: CompileCache) -> None:
        self.state = state
        self.cache = cache
        self.prefix = state.chain_prefix
        self.groups = {group.id: group for group in state.security_groups}
        self.members = dict(state.remote_group_members)
        self.ports = sorted(state.ports, key=_device_of)
        self.filtered = [port for port in self.ports if port.port_security_enabled]
        self.unfiltered = [port for port in self.ports if not port.port_security_enabled]
        self.fallback = names.fallback_chain(self.prefix)
        self.sg_chain = names.sg_chain(self.prefix)
        self.contexts: dict[str, PortContext] = {}
        self._combinations: dict[tuple[str, ...], dict[tuple[int, str], tuple[Template, ...]]] = {}
        # Per compile: the template tuples they are keyed by (by id) live as long as this does.
        self._prototypes: dict[tuple[object, ...], PortChainPrototype] = {}
        self._with_members: dict[tuple[int, int], bool] = {}

    def compile(self) -> CompiledHost:
        templates = {gid: self._group_templates(self.groups[gid]) for gid in self._used_groups()}
        stateful = {port.id: self._is_stateful(port) for port in self.filtered}
        zones = self._zones(stateful)
        families = []
        for family in FAMILIES:
            port_chains: list[Chain] = []
            for port in self.filtered:
                port_chains.extend(self._port_chains(port, family, stateful[port.id], templates))
            filter_table = Table("filter", self._filter_chains(family, port_chains))
            raw_table = Table("raw", self._raw_chains(family, stateful, zones))
            families.append(CompiledFamily(family, (raw_table, filter_table)))
        compiled = CompiledHost(
            v4=families[0],
            v6=families[1],
            ipsets=self._ipsets(templates) if self.state.enable_ipset else (),
            chain_prefix=self.prefix,
        )
        self.cache.forget_all_but(
            {port.id for port in self.ports}, set(templates), {s.name for s in compiled.ipsets}
        )
        return compiled

    # ---- groups -----------------------------------------------------------------------

    def _used_groups(self) -> list[str]:
        seen: dict[str, None] = {}
        for port in self.filtered:
            for group_id in port.security_groups:
                seen.setdefault(group_id, None)
        return list(seen)

    def _is_stateful(self, port: Port) -> bool:
        return port_is_stateful(port, self.groups)

    def _group_context(self, group: SecurityGroup) -> tuple[object, ...]:
        if self.state.enable_ipset:
            return (True,)
        remotes = sorted({r.remote_group_id for r in group.rules if r.remote_group_id})
        return (False, *((gid, self.members.get(gid, ())) for gid in remotes))

    def _group_templates(self, group: SecurityGroup) -> dict[tuple[int, str], tuple[Template, ...]]:
        context = self._group_context(group)
        entry = self.cache.groups.get(group.id)
        if (
            entry is not None
            and (entry.group is group or entry.group == group)
            and entry.context == context
        ):
            return entry.templates
        built: dict[tuple[int, str], list[Template]] = {
            (family, direction): [] for family in FAMILIES for direction in (INGRESS, EGRESS)
        }
        # Matches are interned without the ethertype (an IPv4 and an IPv6 rule can render
        # alike), so duplicates are only duplicates within one (family, direction).
        seen: set[tuple[int, str, int]] = set()
        for rule in group.rules:
            family = FAMILY_BY_ETHERTYPE[rule.ethertype]
            slot = built[(family, rule.direction)]
            comment = sg_rule_comment(rule.id)
            for member, match in self._rule_matches(rule):
                seen_key = (family, rule.direction, id(match))
                if seen_key not in seen:  # the same rule twice in a group: emitted once
                    seen.add(seen_key)
                    slot.append((match, group.id, rule.id, member, comment))
        templates = {key: tuple(value) for key, value in built.items()}
        if entry is not None:
            # Keep the old tuples where nothing changed, so the port chains built from them
            # are reused and the diff sees them as unchanged.
            for key, value in templates.items():
                old = entry.templates.get(key)
                if old is not None and same_templates(old, value):
                    templates[key] = old
        self.cache.groups[group.id] = _GroupEntry(group, context, templates)
        return templates

    def _rule_matches(self, rule: SecurityGroupRule) -> Iterable[tuple[str | None, Match]]:
        remote = rule.remote_group_id
        if remote is None:
            yield None, self._interned_match(rule, rule.remote_ip_prefix, None)
        elif self.state.enable_ipset:
            yield None, self._interned_match(rule, None, names.ipset_name(rule.ethertype, remote))
        else:
            family = FAMILY_BY_ETHERTYPE[rule.ethertype]
            for member in self.members.get(remote, ()):
                if address_version(member) == family:
                    yield member, self._interned_match(rule, member, None)

    def _interned_match(
        self, rule: SecurityGroupRule, remote_cidr: str | None, set_name: str | None
    ) -> Match:
        key = (
            rule.direction,
            rule.protocol,
            rule.port_range_min,
            rule.port_range_max,
            remote_cidr,
            set_name,
        )
        match = self.cache.matches.get(key)
        if match is None:
            match = rule_match(rule, remote_cidr, set_name)
            self.cache.matches[key] = match
        return match

    # ---- per-port chains --------------------------------------------------------------

    def _port_chains(
        self,
        port: Port,
        family: int,
        stateful: bool,
        templates: dict[str, dict[tuple[int, str], tuple[Template, ...]]],
    ) -> tuple[Chain, ...]:
        combination = self._combinations.get(port.security_groups)
        if combination is None:
            combination = self._combination(port.security_groups, templates)
        ingress = combination[(family, INGRESS)]
        egress = combination[(family, EGRESS)]
        # The key holds the template tuples themselves (compared by identity first), so an id
        # can never be reused by a different tuple while the entry lives. The port (compared
        # below) carries its log events; the host's log settings count only when it logs.
        log = None
        if port.log_events is not None:
            log = PortLog(port.log_events, self.state.log_settings, family)
        key = (stateful, self.prefix, self.state.compat, ingress, egress, log)
        entry = self.cache.ports.get((port.id, family))
        if entry is not None and entry.key == key and (entry.port is port or entry.port == port):
            return entry.chains
        builder = PortChainBuilder(
            self.prefix, port, family, stateful, self._context(port.id), self.state.compat, log
        )
        chains = builder.lazy_build(self._prototype(port, family, stateful, ingress, egress, log))
        self.cache.ports[(port.id, family)] = _PortEntry(port, key, chains)
        return chains

    def _prototype(
        self,
        port: Port,
        family: int,
        stateful: bool,
        ingress: tuple[Template, ...],
        egress: tuple[Template, ...],
        log: PortLog | None,
    ) -> PortChainPrototype:
        with_members = self._with_members.get((id(ingress), id(egress)))
        if with_members is None:
            with_members = has_member_templates(ingress) or has_member_templates(egress)
            self._with_members[(id(ingress), id(egress))] = with_members
        compat = self.state.compat
        key = prototype_key(port, family, stateful, ingress, egress, with_members, compat, log)
        prototype = self._prototypes.get(key)
        if prototype is None:
            prototype = PortChainPrototype(
                self.prefix, port, family, stateful, ingress, egress, compat, log
            )
            self._prototypes[key] = prototype
        return prototype

    def _context(self, port_id: str) -> PortContext:
        context = self.contexts.get(port_id)
        if context is None:
            context = self.contexts[port_id] = PortContext(self.prefix, port_id)
        return context

    def _combination(
        self,
        group_ids: tuple[str, ...],
        templates: dict[str, dict[tuple[int, str], tuple[Template, ...]]],
    ) -> dict[tuple[int, str], tuple[Template, ...]]:
        """The merged user-rule templates of a group combination, per (family, direction),
        shared by every port with that combination and, through the cache, kept identical
        while the groups' templates are."""
        combination = {}
        for family in FAMILIES:
            for direction in (INGRESS, EGRESS):
                parts = tuple(templates[gid][(family, direction)] for gid in group_ids)
                key = (family, direction, group_ids)
                entry = self.cache.merged.get(key)
                if entry is None or entry[0] != parts:
                    entry = (parts, merge_templates(parts))
                    self.cache.merged[key] = entry
                combination[(family, direction)] = entry[1]
        self._combinations[group_ids] = combination
        return combination

    # ---- host-wide chains -------------------------------------------------------------

    def _filter_chains(self, family: int, port_chains: list[Chain]) -> tuple[Chain, ...]:
        prefix = self.prefix
        key = (
            tuple((port.id, port.device) for port in self.filtered),
            tuple((port.id, port.device) for port in self.unfiltered),
        )
        # Both families get the very same host-wide chains (built once, immutable).
        shared = self.cache.reuse(("filter", prefix), key)
        if shared is None:
            shared = self._shared_filter_chains()
            self.cache.remember(("filter", prefix), key, shared)
        builtins, own = cast(tuple[tuple[Chain, ...], tuple[Chain, ...]], shared)
        return (*builtins, *sorted((*own, *port_chains), key=_chain_name))

    def _shared_filter_chains(self) -> tuple[tuple[Chain, ...], tuple[Chain, ...]]:
        prefix = self.prefix
        forward = names.forward_chain(prefix)
        input_ = names.input_chain(prefix)
        output = names.output_chain(prefix)
        local = names.local_chain(prefix)
        top = names.FILTER_TOP_CHAIN
        builtins = (
            _builtin("INPUT", (input_,)),
            _builtin("FORWARD", (top, forward)),
            _builtin("OUTPUT", (top, output)),
        )
        host = HostChains(
            forward,
            input_,
            self.sg_chain,
            [(port, self._context(port.id)) for port in self.filtered],
            self.unfiltered,
        )
        forward_chain, input_chain, sg_chain = host.chains()
        own = (
            Chain(top, (new_rule(top, NO_MATCH, local, new_origin(ORIGIN_JUMP)),)),
            forward_chain,
            input_chain,
            Chain(output, ()),
            Chain(local, ()),
            sg_chain,
            Chain(
                self.fallback,
                (new_rule(self.fallback, NO_MATCH, DROP, new_origin(ORIGIN_FALLBACK)),),
            ),
        )
        return builtins, own

    def _zones(self, stateful: dict[str, bool]) -> dict[str, int]:
        return assign_zones(self.filtered, stateful, dict(self.state.conntrack_zones))

    def _raw_chains(
        self, family: int, stateful: dict[str, bool], zones: dict[str, int]
    ) -> tuple[Chain, ...]:
        prefix = self.prefix
        key = tuple(
            (port.id, port.device, port.bridge, zones.get(port.id)) for port in self.filtered
        )
        # Both families get the very same raw chains.
        shared = self.cache.reuse(("raw", prefix), key)
        if shared is None:
            shared = raw_chains(prefix, self.filtered, zones)
            self.cache.remember(("raw", prefix), key, shared)
        return cast(tuple[Chain, ...], shared)

    # ---- ipsets -----------------------------------------------------------------------

    def _ipsets(
        self, templates: dict[str, dict[tuple[int, str], tuple[Template, ...]]]
    ) -> tuple[IpSet, ...]:
        referenced: dict[str, tuple[str, str]] = {}
        for gid in templates:
            for rule in self.groups[gid].rules:
                if rule.remote_group_id is not None:
                    name = names.ipset_name(rule.ethertype, rule.remote_group_id)
                    referenced[name] = (rule.ethertype, rule.remote_group_id)
        result = []
        for name in sorted(referenced):
            ethertype, remote = referenced[name]
            v4, v6 = self._sorted_members(self.members.get(remote, ()), remote)
            members = v4 if ethertype == IPV4 else v6
            family = "inet" if ethertype == IPV4 else "inet6"
            cached = self.cache.ipsets.get(name)
            if (
                cached is None
                or cached.family != family
                or cached.group_id != remote
                or not same_entries(self.cache, cached, members)
            ):
                edit = set_edit(self.cache, ipset_token(cached), members) if cached else None
                cached = new_ipset(name, family, members, remote, edit)
                self.cache.ipsets[name] = cached
            result.append(cached)
        return tuple(result)

    def _sorted_members(
        self, members: tuple[str, ...], group_id: str = ""
    ) -> tuple[Entries, Entries]:
        return sorted_members(self.cache, members, group_id)


def _builtin(name: str, targets: Sequence[str]) -> Chain:
    origin = new_origin(ORIGIN_JUMP)
    return Chain(name, tuple(new_rule(name, NO_MATCH, t, origin) for t in targets), owned=False)


def clear_caches() -> None:
    """Forget module-level memos (benchmarks use it to measure cold compiles)."""
    hostchains.clear_caches()
    _LINK_LOCAL.clear()
    _DHCP_REPLY_MATCHES.clear()


def _device_of(port: Port) -> str:
    return port.device or ""


_chain_name = attrgetter("name")
