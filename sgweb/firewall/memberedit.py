"""A remote group's members changed by a few: validate and carry just those few.

A port joining a group of 50,000 hands the compiler a new tuple of 50,001 addresses. Checking
and normalising each of them again (a Python call per address), then comparing sets again in
the compiler and again in the diff (twice: delta and rollback), cost milliseconds per step.
Here the new tuple is compared with the last one (both sorted, as the control plane sends them:
single items guess where they differ, one slice comparison in C per shared run proves it);
only the addresses that came are checked; the normalised tuple is the last one with those few
spliced in (one list copy edited in place: each copy of 50,000 costs more than the rest); the
change (`MemberEdit`: what came and went, normalised, exactly as sets) is handed on, so the
compiler edits its sorted set entries and the diff writes its add/del lines from it.

Exact, or not used: the last tuple is checked once to be sorted without repeats and each edit
keeps it so (a tuple the control plane did not sort, or with repeats, takes the full path),
so the merge finds exactly what came and went; "went" means no address left normalises to that
value any more (counted per normalised value).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice


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
    present: dict[str, int]
    # The tuples as given, before and after (what a caller holding them compares by identity).
    given_before: tuple[str, ...] = ()
    given_after: tuple[str, ...] = ()


@dataclass(slots=True)
class _Last:
    given: tuple[str, ...]
    normalised: tuple[str, ...]
    counts: dict[str, int] | None = None  # built on the first edit
    # Whether `given` is sorted without repeats (checked once, then kept by each edit).
    ordered: bool | None = None


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
        try:
            edit = _edited(last, given, normalise) if last is not None else None
        except TypeError:  # something not a string: the full path says which and why
            edit = None
        if edit is None:
            self.last[group_id] = _Last(given, full(group_id, given))
            return self.last[group_id].normalised
        self.last[group_id] = _Last(given, edit.after, edit.present, True)
        self.edits[group_id] = edit
        return edit.after


def _same_run(old: tuple[str, ...], i: int, new: tuple[str, ...], j: int) -> int:
    """How many items from old[i] and new[j] on are equal. A slice copies (and later frees)
    every item it holds, ~10 ns each at 50,000, far more than the comparison (in C) itself:
    so the run's end is first guessed by a binary search of single items (with one change
    in a run of sorted items without repeats, items match up to it and differ from it on),
    then proved by one slice comparison; only a wrong guess (several changes close together)
    takes the binary search over slices."""
    high = min(len(old) - i, len(new) - j)
    low, top = 0, high
    while low < top:  # the items at low - 1 matched; the first that differs is in [low, top]
        middle = (low + top) // 2
        if old[i + middle] == new[j + middle]:
            low = middle + 1
        else:
            top = middle
    # Proved: the guessed run is equal, and the item after it (if any) differs.
    ends = low == high or old[i + low] != new[j + low]
    if ends and old[i : i + low] == new[j : j + low]:
        return low
    return _same_run_sliced(old, i, new, j, high)


def _same_run_sliced(old: tuple[str, ...], i: int, new: tuple[str, ...], j: int, high: int) -> int:
    """`_same_run` by a binary search over slice comparisons (exact for any two tuples)."""
    low = 0
    if old[i : i + high] == new[j : j + high]:
        return high
    while low < high:  # old[i:i+low] == new[j:j+low], and the run is shorter than high
        middle = (low + high + 1) // 2
        if old[i + low : i + middle] == new[j + low : j + middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _changes(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[list[int], list[int]] | None:
    """Merging two sorted tuples without repeats: the positions of what came (in new) and
    went (in old); None when more than a few changed (then the full path is as cheap: each
    change is a move of the pointers after it in `_edited`, ~10 us at 50,000)."""
    limit = max(16, min(len(new) // 16, 256))
    came: list[int] = []
    went: list[int] = []
    i = j = 0
    while i < len(old) and j < len(new):
        run = _same_run(old, i, new, j)
        if run:
            i, j = i + run, j + run
            continue
        if old[i] < new[j]:
            went.append(i)
            i += 1
        else:
            came.append(j)
            j += 1
        if len(came) + len(went) > limit:
            return None
    came.extend(range(j, len(new)))
    went.extend(range(i, len(old)))
    return (came, went) if len(came) + len(went) <= limit else None


def _is_ordered(given: tuple[str, ...]) -> bool:
    """Sorted, no repeats: each item less than the next (one pass in C, no copy)."""
    return all(map(operator.lt, given, islice(given, 1, None)))


def _counts(normalised: tuple[str, ...]) -> dict[str, int]:
    """Per normalised value, how many of the (distinct) given addresses yield it: 1 each
    unless two spellings of one address were given (built once, on the first edit after a
    start: a dict of 50,000 ones is ~4 ms, a Counter of a dict of pairs was ~30)."""
    counts = dict.fromkeys(normalised, 1)
    if len(counts) != len(normalised):
        counts = dict(Counter(normalised))
    return counts


def _edited(
    last: _Last, given: tuple[str, ...], normalise: Callable[[str], str]
) -> MemberEdit | None:
    if last.ordered is None:
        last.ordered = _is_ordered(last.given)
    changes = _changes(last.given, given) if last.ordered else None
    if changes is None:
        return None
    came, went = changes
    for j in came:  # `given` stays sorted without repeats (then the merge is exact)
        if (j and given[j - 1] >= given[j]) or (j + 1 < len(given) and given[j] >= given[j + 1]):
            return None
    try:
        normal = {given[j]: normalise(given[j]) for j in came}
    except ValueError:
        return None  # the full path says which address and why
    # One copy of the last tuple as a list, edited in place (a delete or an insert moves
    # pointers, without touching the addresses), then one tuple: each copy of 50,000 costs
    # ~0.1-0.3 ms, so the number of copies is what counts here.
    spliced = list(last.normalised)
    for i in reversed(went):
        del spliced[i]
    for j in came:  # in `given`'s order: each lands where it is in `given`
        spliced.insert(j, normal[given[j]])
    if len(spliced) != len(given):
        return None  # cannot happen for a merge of sorted tuples; never guess
    counts = last.counts
    if counts is None:  # `last.given` is ordered: no repeats, one value per given address
        counts = _counts(last.normalised)
    added, removed = [], []
    for value in (last.normalised[i] for i in went):
        counts[value] -= 1
        if counts[value] == 0:
            del counts[value]
            removed.append(value)
    for value in normal.values():
        counts[value] = counts.get(value, 0) + 1
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
        last.given,
        given,
    )
