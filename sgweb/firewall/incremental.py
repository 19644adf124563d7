"""The smallest change that turns the kernel from one compiled state into the next.

iptables: `iptables-restore --noflush` text that edits in place the chains whose rules changed
(`-D CHAIN N` for rules that went, `-I CHAIN N` for rules that came, the way Neutron's
iptables_manager does), so the rules still there keep their kernel counters (issue 12); adds new
chains, and flushes then deletes (-X) chains that are gone, after the chains that referenced them
were edited in the same transaction. A chain that keeps none of its rules is re-declared (which
flushes it) and refilled, as is every changed chain with `in_place=False` (the behaviour before
issue 12, kept for the benchmark that compares the two). It never names a chain we do not own,
except the optional jumps from the built-in chains.

ipsets: changed sets are filled under a temporary name and swapped in, so a set is never seen
half-filled (a set that gains or loses only a few members gets just those added and deleted);
new sets exist (empty) before iptables references them; sets nobody references any
more are destroyed only after iptables stopped using them. The host agent runs, in order:
ipsets.prepare, iptables per family, ipsets.commit, ipsets.cleanup; on failure ipsets.abort.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from difflib import SequenceMatcher

from sgweb.firewall.compiled_rules import gc_paused
from sgweb.firewall.ir import Chain, CompiledHost, IpSet, LazyChain, Table, ipset_size, ipset_token
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
    previous: CompiledHost | None,
    new: CompiledHost,
    *,
    include_builtin_jumps: bool = False,
    in_place: bool = True,
) -> Delta:
    """What to apply to go from `previous` (None: nothing of ours yet) to `new`.

    Chains that are the very same objects (a CompileCache reuses them) are skipped without
    looking; others are compared by their rendered rules, and edited in place unless
    `in_place` is False.
    """
    with gc_paused():
        return _diff(previous, new, include_builtin_jumps, in_place)


def _diff(
    previous: CompiledHost | None, new: CompiledHost, include_builtin_jumps: bool, in_place: bool
) -> Delta:
    changed: set[str] = set()
    removed: set[str] = set()
    iptables: list[tuple[int, str]] = []
    for family in (4, 6):
        old_tables = {} if previous is None else _tables(previous, family)
        sections: list[str] = []
        for table in sorted(new.family(family).tables, key=_table_rank):
            old_table = old_tables.get(table.name)
            section = _table_delta(
                table, old_table, include_builtin_jumps, in_place, changed, removed
            )
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
    in_place: bool,
    changed: set[str],
    removed: set[str],
) -> str:
    old_chains = {} if old_table is None else {c.name: c for c in old_table.chains if c.owned}
    rewritten: list[Chain] = []
    edits: list[str] = []
    new_names: set[str] = set()
    for chain in table.chains:
        if not chain.owned:
            continue
        new_names.add(chain.name)
        old = old_chains.get(chain.name)
        if old is not None and _same_rules(old, chain):
            continue
        chain_edits = in_place_edits(old, chain) if in_place and old is not None else None
        if chain_edits is None:
            rewritten.append(chain)
        else:
            edits.extend(chain_edits)
            changed.add(chain.name)
    gone = sorted(name for name in old_chains if name not in new_names)
    jumps = [chain for chain in table.chains if not chain.owned] if include_builtin_jumps else []
    if not rewritten and not edits and not gone and not any(chain.rules for chain in jumps):
        return ""
    lines = ["*" + table.name]
    # Declaring a chain under --noflush creates it or flushes it; gone chains are flushed
    # this way too, so that nothing references them when -X runs at the end. New chains are
    # declared before the edits, which may jump to them.
    lines.extend(f":{chain.name} - [0:0]" for chain in rewritten)
    lines.extend(f":{name} - [0:0]" for name in gone)
    lines.extend(edits)
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


def in_place_edits(old: Chain, new: Chain) -> list[str] | None:
    """`-D`/`-I` lines turning `old` into `new` while the rules both have stay (with their
    counters); None when no rule stays (a rewrite is as good and shorter).

    The rules kept are a longest common subsequence (difflib's matching blocks) of the two
    rule lists by rendered text. Deleting first, from the bottom up, leaves exactly the kept
    rules in order; inserting then from the top down puts each new rule at its final position,
    since every position above it is final already.
    """
    old_texts = _rule_tails(old)
    new_texts = _rule_tails(new)
    matcher = SequenceMatcher(None, old_texts, new_texts, autojunk=False)
    kept_old: set[int] = set()
    kept_new: set[int] = set()
    for block in matcher.get_matching_blocks():
        kept_old.update(range(block.a, block.a + block.size))
        kept_new.update(range(block.b, block.b + block.size))
    if not kept_old:
        return None
    name = new.name
    lines = [f"-D {name} {index + 1}" for index in reversed(range(len(old_texts)))
             if index not in kept_old]  # fmt: skip
    lines.extend(f"-I {name} {index + 1}{new_texts[index]}" for index in range(len(new_texts))
                 if index not in kept_new)  # fmt: skip
    return lines


def _rule_tails(chain: Chain) -> list[str]:
    """Each rule's text after "-A CHAIN" (starting with a space)."""
    if not has_rules(chain):
        return []
    head_length = len("-A " + chain.name)
    return [line[head_length:] for line in rendered_chain(chain).split("\n")]


def _ipset_plan(old_sets: tuple[IpSet, ...], new_sets: tuple[IpSet, ...]) -> IpsetPlan:
    old_by_name = {ipset.name: ipset for ipset in old_sets}
    new_names = {ipset.name for ipset in new_sets}
    prepare: list[str] = []
    commit: list[str] = []
    abort_temporaries: list[str] = []
    abort_created: list[str] = []
    for ipset in sorted(new_sets, key=_set_name):
        old = old_by_name.get(ipset.name)
        if old is ipset:
            continue
        if old is not None and old.family == ipset.family:
            # A known edit first: it differs (and a lazy set's tuple stays unmade).
            known = _known_edit(old, ipset)
            if known is None and old.members == ipset.members:
                continue
            if _member_edits(old, ipset, known, commit):
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


def _member_edits(
    old: IpSet,
    new: IpSet,
    known: tuple[Collection[str], Collection[str]] | None,
    out: list[str],
) -> bool:
    """A few members came or went (a port joined or left a group of thousands): add and
    delete just those, in the commit step, instead of refilling the whole set aside; False
    (nothing written) when so much changed that a refill and swap is the smaller job.
    `known`: the compiler's own record of the edit (`_known_edit`), if any."""
    if known is not None:
        added, removed = known
    else:
        before, after = set(old.members), set(new.members)
        added, removed = after - before, before - after
    if (len(added) + len(removed)) * 4 > ipset_size(new):
        return False
    out.extend(f"add {new.name} {member} -exist" for member in sorted(added))
    out.extend(f"del {new.name} {member} -exist" for member in sorted(removed))
    return True


def _known_edit(old: IpSet, new: IpSet) -> tuple[Collection[str], Collection[str]] | None:
    """(added, removed) as the compiler made one set from the other (`IpSet.edit`), either way
    (a delta or its rollback); None when neither was made from the other."""
    if new.edit is not None and new.edit[0] is ipset_token(old):
        return new.edit[1], new.edit[2]
    if old.edit is not None and old.edit[0] is ipset_token(new):
        return old.edit[2], old.edit[1]
    return None


def _set_name(ipset: IpSet) -> str:
    return ipset.name


def _text(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)
