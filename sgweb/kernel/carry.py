"""Kernel counters carried across a full apply (issue 12: counters that survive).

Incremental applies edit chains in place (`sgweb.firewall.incremental.in_place_edits`), so the
rules that stay keep their counters without any help. A full apply (agent start, drift repair,
the retry after an unknown kernel) has no previous state to edit from: it re-declares every
chain, which zeroes every counter. So just before it, the counters of every rule are read in
one `iptables-save -c` per table, and the restore input gets each surviving rule's count back
with the restore's own syntax, ``[packets:bytes] -A CHAIN ...`` (which `iptables-restore` takes
only with `-c`; `restore_argv` adds it when the input carries counters).

A rule is recognised by its text, compared without case: our renderer writes rules the way
iptables-save prints them, except that iptables-nft lowers `--mac-source`. Rules with the same
text in one chain take the old counts in order. A rule whose text changed starts at zero, which
is right: it is a different rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from sgweb.kernel import nftcarry
from sgweb.kernel.deltas import DeltaLike, IpsetPlan, PlainDelta
from sgweb.kernel.readback import TABLES, Counter, KernelReadback, save_command

# (table, chain) -> rule text (lower case, without "[p:b] ") -> counters in chain order
Carried = dict[tuple[str, str], dict[str, list[Counter]]]


def read_carry(readback: KernelReadback, family: int, tables: Iterable[str] = TABLES) -> Carried:
    """Every rule's counter of the family's tables, by chain and rule text."""
    carried: Carried = {}
    for table in tables:
        saved = readback._run([save_command(family), "-c", "-t", table], check=False)
        if saved.returncode != 0:
            continue
        for line in saved.stdout.splitlines():
            if not line.startswith("["):
                continue
            counts, rule = line.split(" ", 1)
            chain = rule.split(" ", 2)[1]
            packets, size = counts.strip("[]").split(":")
            if packets == "0" and size == "0":
                continue  # nothing to carry
            by_text = carried.setdefault((table, chain), {})
            by_text.setdefault(rule.lower(), []).append(Counter(int(packets), int(size)))
    return carried


def with_counters(restore_text: str, carried: Carried) -> str:
    """The restore input with ``[p:b]`` before every rule that had a count."""
    if not carried:
        return restore_text
    out: list[str] = []
    table = ""
    taken: dict[tuple[str, str, str], int] = {}  # how many of the same text were used
    for line in restore_text.split("\n"):
        if line.startswith("*"):
            table = line[1:].strip()
        elif line.startswith("-A "):
            chain = line.split(" ", 2)[1]
            by_text = carried.get((table, chain))
            text = line.lower()
            counters = by_text.get(text) if by_text else None
            if counters:
                key = (table, chain, text)
                used = taken.get(key, 0)
                if used < len(counters):
                    taken[key] = used + 1
                    line = f"[{counters[used].packets}:{counters[used].bytes}] {line}"
        out.append(line)
    return "\n".join(out)


def delta_with_counters(delta: DeltaLike, carried: dict[int, Carried]) -> PlainDelta:
    """A whole-state delta whose rules start from the counts `carried` (per family) holds."""
    return PlainDelta(
        ipsets=IpsetPlan(
            delta.ipsets.prepare, delta.ipsets.commit, delta.ipsets.cleanup, delta.ipsets.abort
        ),
        iptables=tuple(
            (family, with_counters(text, carried.get(family, {})))
            for family, text in delta.iptables
        ),
    )


def carries_counters(restore_text: str) -> bool:
    return restore_text.startswith("[") or "\n[" in restore_text


def restore_argv(family: int, restore_text: str, *options: str) -> list[str]:
    """`iptables-restore OPTIONS` (+ `-c` when the input sets counters)."""
    restore = "iptables-restore" if family == 4 else "ip6tables-restore"
    counters = ["-c"] if carries_counters(restore_text) else []
    return [restore, *options, *counters]


def carry_ipv6_counters(
    netns: str | None, family: int, restore_text: str, *, whole_tables: bool = False
) -> list[str]:
    """After a restore of `restore_text` went in (`whole_tables`: without `--noflush`): give IPv6
    rules the counts it carries, which `ip6tables-restore -c` ignores (`sgweb.kernel.nftcarry`).
    Returns warnings: a failed write-back leaves the new rules in force with counters from zero
    (the accounting takes a counter that went down as a new baseline), so it never fails the
    apply."""
    if family != 6 or not carries_counters(restore_text):
        return []
    try:
        nftcarry.write_back(netns, family, restore_text, whole_tables=whole_tables)
    except OSError as exc:
        return [f"IPv6 counters were not carried over: {exc}"]
    return []
