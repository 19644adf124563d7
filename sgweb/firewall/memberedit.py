"""A remote group's members changed by a few: validate and carry just those few.

A port joining a group of 50,000 hands the compiler a new tuple of 50,001 addresses. Checking
and normalising each of them again (a Python call per address), then comparing sets again in
the compiler and again in the diff (twice: delta and rollback), cost milliseconds per step.
Here the new tuple is compared with the last one once, in C (`frozenset` differences); only the
addresses that came are checked; the normalised tuple is the last one with those few spliced
in; and the change (`MemberEdit`: what came and went, normalised, exactly as sets) is handed
on, so the compiler edits its sorted set entries and the diff writes its add/del lines from it.

Exact, or not used: the splice is compared with the given tuple (a tuple the control plane did
not sort, or with repeats, falls back to the full path), and "went" means no address left
normalises to that value any more (counted per normalised value).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass


# Beyond this many comings and goings the full path (check everything) is as cheap.
def _small(changed: int, size: int) -> bool:
    return changed <= max(16, size // 16)


@dataclass(frozen=True, slots=True)
class MemberEdit:
    """From one validated members tuple to the next: the normalised values that came and went
    (as sets: a value still given by another spelling neither came nor went)."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    # The normalised values present after the edit, with how many given addresses yield each
    # (supports `in`; shared with the memo, valid until the next edit of this group).
    present: Counter[str]


@dataclass(slots=True)
class _Last:
    given: tuple[str, ...]
    given_set: frozenset[str]
    normalised: tuple[str, ...]
    counts: Counter[str] | None = None  # built on the first edit


class MemberMemo:
    """Per group, the members last validated (one per compile cache, so per agent)."""

    def __init__(self) -> None:
        self.last: dict[str, _Last] = {}
        self.edits: dict[str, MemberEdit] = {}  # the edits the last validation made

    def begin(self) -> None:
        self.edits.clear()

    def forget_all_but(self, group_ids: set[str]) -> None:
        for gid in [gid for gid in self.last if gid not in group_ids]:
            del self.last[gid]

    def validate(
        self,
        group_id: str,
        given: tuple[str, ...],
        full: Callable[[str, tuple[str, ...]], tuple[str, ...]],
        normalise: Callable[[str], str],
    ) -> tuple[str, ...]:
        """`full(group_id, given)`'s answer, computed from the last one when only a few
        addresses came or went (`normalise` checks one address, ValueError if bad)."""
        last = self.last.get(group_id)
        if last is not None and last.given is given:
            return last.normalised
        given_set = frozenset(given)
        edit = _edited(last, given, given_set, normalise) if last is not None else None
        if edit is None:
            self.last[group_id] = _Last(given, given_set, full(group_id, given))
            return self.last[group_id].normalised
        assert last is not None
        self.last[group_id] = _Last(given, given_set, edit.after, edit.present)
        self.edits[group_id] = edit
        return edit.after


def _edited(
    last: _Last,
    given: tuple[str, ...],
    given_set: frozenset[str],
    normalise: Callable[[str], str],
) -> MemberEdit | None:
    came, went = given_set - last.given_set, last.given_set - given_set
    if not _small(len(came) + len(went), len(given_set)):
        return None
    try:
        normal = {address: normalise(address) for address in came}
    except ValueError:
        return None  # the full path says which address and why
    spliced_given, spliced = list(last.given), list(last.normalised)
    gone: list[str] = []
    for address in went:
        index = bisect.bisect_left(spliced_given, address)
        if index == len(spliced_given) or spliced_given[index] != address:
            return None  # the last tuple was not sorted
        gone.append(spliced[index])
        del spliced_given[index], spliced[index]
    for address in sorted(came):
        index = bisect.bisect_left(spliced_given, address)
        spliced_given.insert(index, address)
        spliced.insert(index, normal[address])
    if tuple(spliced_given) != given:
        return None  # not sorted, or repeats: the full path
    counts = last.counts
    if counts is None:
        counts = Counter(normalise(address) for address in last.given_set)
    added, removed = [], []
    for value in gone:
        counts[value] -= 1
        if counts[value] == 0:
            del counts[value]
            removed.append(value)
    for value in normal.values():
        counts[value] += 1
        if counts[value] == 1:
            added.append(value)
    # A value that went with one spelling and came with another did neither.
    both = set(added) & set(removed)
    return MemberEdit(
        last.normalised,
        tuple(spliced),
        tuple(sorted(set(added) - both)),
        tuple(sorted(set(removed) - both)),
        counts,
    )
