"""The smallest change that turns the kernel from one compiled state into the next.

iptables: `iptables-restore --noflush` text that re-declares (which flushes) and refills only
the chains whose rules changed, adds new chains, and flushes then deletes (-X) chains that are
gone, after the chains that referenced them were rewritten in the same transaction. It never
names a chain we do not own, except the optional jumps from the built-in chains.

ipsets: changed sets are filled under a temporary name and swapped in, so a set is never seen
half-filled; new sets exist (empty) before iptables references them; sets nobody references any
more are destroyed only after iptables stopped using them. The host agent runs, in order:
ipsets.prepare, iptables per family, ipsets.commit, ipsets.cleanup; on failure ipsets.abort.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgweb.firewall.compiled_rules import gc_paused
from sgweb.firewall.ir import Chain, CompiledHost, IpSet, LazyChain, Table
from sgweb.firewall.names import temporary_ipset_name
from sgweb.firewall.render import (
    has_rules,
    ipset_create_line,
    ipset_member_lines,
    match_text,
    rendered_chain,
)

TABLE_ORDER = ("raw", "filter")


@dataclass(frozen=True, slots=True)
class IpsetPlan:
    prepare: (
        str  # ipset restore text: create new sets; create+fill a temporary set for each changed one
    )
    commit: str  # swap each temporary set into its live set, destroy the temporaries
    cleanup: str  # destroy sets no longer referenced (run after iptables stopped referencing them)
    abort: str  # undo prepare (destroy temporaries and sets that prepare created)


@dataclass(frozen=True, slots=True)
class Delta:
    ipsets: IpsetPlan
    # (4 or 6, iptables-restore --noflush text); no entry when nothing changed for that family
    iptables: tuple[tuple[int, str], ...]
    changed_chains: tuple[str, ...]
    removed_chains: tuple[str, ...]

    @property
    def empty(self) -> bool:
        plan = self.ipsets
        return not (self.iptables or plan.prepare or plan.commit or plan.cleanup)


def diff(
    previous: CompiledHost | None, new: CompiledHost, *, include_builtin_jumps: bool = False
) -> Delta:
    """What to apply to go from `previous` (None: nothing of ours yet) to `new`.

    Chains that are the very same objects (a CompileCache reuses them) are skipped without
    looking; others are compared by their rendered rules.
    """
    with gc_paused():
        return _diff(previous, new, include_builtin_jumps)


def _diff(previous: CompiledHost | None, new: CompiledHost, include_builtin_jumps: bool) -> Delta:
    changed: set[str] = set()
    removed: set[str] = set()
    iptables: list[tuple[int, str]] = []
    for family in (4, 6):
        old_tables = {} if previous is None else _tables(previous, family)
        sections: list[str] = []
        for table in sorted(new.family(family).tables, key=_table_rank):
            old_table = old_tables.get(table.name)
            section = _table_delta(table, old_table, include_builtin_jumps, changed, removed)
            if section:
                sections.append(section)
        if sections:
            iptables.append((family, "".join(sections)))
    return Delta(
        ipsets=_ipset_plan(() if previous is None else previous.ipsets, new.ipsets),
        iptables=tuple(iptables),
        changed_chains=tuple(sorted(changed)),
        removed_chains=tuple(sorted(removed)),
    )


def _tables(compiled: CompiledHost, family: int) -> dict[str, Table]:
    return {table.name: table for table in compiled.family(family).tables}


def _table_rank(table: Table) -> int:
    return TABLE_ORDER.index(table.name) if table.name in TABLE_ORDER else len(TABLE_ORDER)


def _same_rules(old: Chain, new: Chain) -> bool:
    if old is new:
        return True
    if type(old) is LazyChain or type(new) is LazyChain:
        # Same rendered lines is the same rules to the kernel; no rules need making.
        return rendered_chain(old) == rendered_chain(new)
    if old.rules is new.rules:
        return True
    if len(old.rules) != len(new.rules):
        return False
    for a, b in zip(old.rules, new.rules, strict=True):
        if a is b:
            continue
        if (
            a.target == b.target
            and a.comment == b.comment
            and a.target_args == b.target_args
            and (a.match is b.match or match_text(a.match) == match_text(b.match))
        ):
            continue
        return False
    return True


def _table_delta(
    table: Table,
    old_table: Table | None,
    include_builtin_jumps: bool,
    changed: set[str],
    removed: set[str],
) -> str:
    old_chains = {} if old_table is None else {c.name: c for c in old_table.chains if c.owned}
    rewritten: list[Chain] = []
    new_names: set[str] = set()
    for chain in table.chains:
        if not chain.owned:
            continue
        new_names.add(chain.name)
        old = old_chains.get(chain.name)
        if old is not None and _same_rules(old, chain):
            continue
        rewritten.append(chain)
    gone = sorted(name for name in old_chains if name not in new_names)
    jumps = [chain for chain in table.chains if not chain.owned] if include_builtin_jumps else []
    if not rewritten and not gone and not any(chain.rules for chain in jumps):
        return ""
    lines = ["*" + table.name]
    # Declaring a chain under --noflush creates it or flushes it; gone chains are flushed
    # this way too, so that nothing references them when -X runs at the end.
    lines.extend(f":{chain.name} - [0:0]" for chain in rewritten)
    lines.extend(f":{name} - [0:0]" for name in gone)
    # The jumps from the built-in chains go before our chains' rules, as in render_iptables:
    # the kernel takes a big transaction 15-28% faster in that order (measured with
    # bench.kernel at 1000-5000 ports), and within one COMMIT the order between chains has
    # no meaning; the order inside each chain is kept.
    lines.extend(rendered_chain(chain) for chain in jumps if chain.rules)
    lines.extend(rendered_chain(chain) for chain in rewritten if has_rules(chain))
    lines.extend("-X " + name for name in gone)
    lines.append("COMMIT")
    changed.update(chain.name for chain in rewritten)
    removed.update(gone)
    return "\n".join(lines) + "\n"


def _ipset_plan(old_sets: tuple[IpSet, ...], new_sets: tuple[IpSet, ...]) -> IpsetPlan:
    old_by_name = {ipset.name: ipset for ipset in old_sets}
    new_names = {ipset.name for ipset in new_sets}
    prepare: list[str] = []
    commit: list[str] = []
    abort_temporaries: list[str] = []
    abort_created: list[str] = []
    for ipset in sorted(new_sets, key=_set_name):
        old = old_by_name.get(ipset.name)
        if old is not None and (
            old is ipset or (old.members == ipset.members and old.family == ipset.family)
        ):
            continue
        if old is None:
            # Created empty first: iptables may reference it before commit fills it.
            prepare.append(ipset_create_line(ipset.name, ipset.family))
            abort_created.append("destroy " + ipset.name)
        temporary = temporary_ipset_name(ipset.name)
        prepare.append(ipset_create_line(temporary, ipset.family))
        prepare.append("flush " + temporary)  # a temporary left over by a crash
        ipset_member_lines(temporary, ipset.members, prepare)
        commit.append(f"swap {temporary} {ipset.name}")
        commit.append("destroy " + temporary)
        abort_temporaries.append("destroy " + temporary)
    cleanup = ["destroy " + name for name in sorted(old_by_name) if name not in new_names]
    return IpsetPlan(
        prepare=_text(prepare),
        commit=_text(commit),
        cleanup=_text(cleanup),
        abort=_text(abort_temporaries + abort_created),
    )


def _set_name(ipset: IpSet) -> str:
    return ipset.name


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
