"""A remote group's members changed by a few: validate and carry just those few.

A port joining a group of 50,000 hands the compiler a new tuple of 50,001 addresses. Checking
and normalising each of them again (a Python call per address), then comparing sets again in
the compiler and again in the diff (twice: delta and rollback), cost milliseconds per step.
Here the new tuple is compared with the last one (both sorted, as the control plane sends them:
single items guess where they differ, one slice comparison in C per shared run proves it);
only the addresses that came are checked; the change (`MemberEdit`: what came and went,
normalised, exactly as sets) is handed on, so the compiler edits its sorted set entries and the
diff writes its add/del lines from it. The normalised tuple itself is made only when someone
asks for it (`MemberState.made`: a full compile, or a compile with ipsets off): until then a
state is the last made tuple plus the few addresses that came and went since (copying 50,000
costs more than the rest of a join, and freeing the old tuple as much again).

Exact, or not used: the last tuple is checked once to be sorted without repeats and each edit
keeps it so (a tuple the control plane did not sort, or with repeats, takes the full path),
so the merge finds exactly what came and went; "went" means no address left normalises to that
value any more (counted per normalised value).
"""

from __future__ import annotations

import operator
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice


@dataclass(frozen=True, slots=True)
class MemberEdit:
    """From one validated members tuple to the next: the normalised values that came and went
    (as sets: a value still given by another spelling neither came nor went)."""

    before: MemberState
    after: MemberState
    added: tuple[str, ...]
    removed: tuple[str, ...]
    # The normalised values present after the edit, with how many given addresses yield each
    # (supports `in`; shared with the memo, valid until the next edit of this group).
    present: dict[str, int]
    # The tuples as given, before and after (what a caller holding them compares by identity).
    given_before: tuple[str, ...] = ()
    given_after: tuple[str, ...] = ()


# Addresses that came or went kept pending before the normalised tuple is made anyway.
MAX_PENDING = 256


@dataclass(slots=True, eq=False)  # compared by identity (a token of the compiler's caches)
class MemberState:
    """A group's members as last validated: the tuple given, and the normalised one, made
    (`made`) from `base` and what came and went since only when someone asks for it."""

    given: tuple[str, ...]
    normalised: tuple[str, ...] | None
    counts: dict[str, int] | None = None  # built on the first edit
    # Whether `given` is sorted without repeats (checked once, then kept by each edit).
    ordered: bool | None = None
    # While `normalised` is unmade: a made (given, normalised) pair, the addresses given now
    # and not then (with their normalised values) and those given then and not now.
    base: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    came: dict[str, str] = field(default_factory=dict)
    went: set[str] = field(default_factory=set)

    def made(self) -> tuple[str, ...]:
        """The normalised tuple (`full(given)`'s answer): the base's with the few addresses
        that went taken out and those that came put in (both tuples sorted as given)."""
        if self.normalised is None:
            base_given, base_normalised = self.base
            spliced = list(base_normalised)
            for i in sorted((bisect_left(base_given, a) for a in self.went), reverse=True):
                del spliced[i]
            for address in sorted(self.came):  # in `given`'s order: each lands where it is
                spliced.insert(bisect_left(self.given, address), self.came[address])
            if len(spliced) != len(self.given):
                raise RuntimeError("pending member edits do not add up")  # never guess
            self.normalised = tuple(spliced)
            self.base, self.came, self.went = ((), ()), {}, set()
        return self.normalised


class MemberMemo:
    """Per group, the members last validated (one per compile cache, so per agent)."""

    def __init__(self) -> None:
        self.last: dict[str, MemberState] = {}
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
            return last.made()
        edit = self._edit(group_id, last, given, normalise) if last is not None else None
        if edit is None:
            self.last[group_id] = MemberState(given, full(group_id, given))
            return self.last[group_id].made()
        return edit.after.made()

    def edit(
        self,
        group_id: str,
        old: tuple[str, ...],
        given: tuple[str, ...],
        normalise: Callable[[str], str],
    ) -> MemberEdit | None:
        """What came and went from `old` (the tuple last validated) to `given`, without
        making the normalised tuple; None when the last validation was not of `old` or the
        change is not a few sorted addresses (then validate in full)."""
        last = self.last.get(group_id)
        if last is None or last.given is not old:
            return None
        return self._edit(group_id, last, given, normalise)

    def state(self, group_id: str, normalised: tuple[str, ...]) -> MemberState | None:
        """The group's state whose made tuple is `normalised` (by identity), if any."""
        last = self.last.get(group_id)
        return last if last is not None and last.normalised is normalised else None

    def _edit(
        self,
        group_id: str,
        last: MemberState,
        given: tuple[str, ...],
        normalise: Callable[[str], str],
    ) -> MemberEdit | None:
        try:
            edit = _edited(last, given, normalise)
        except TypeError:  # something not a string: the full path says which and why
            return None
        if edit is not None:
            self.last[group_id] = edit.after
            self.edits[group_id] = edit
        return edit


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
    last: MemberState, given: tuple[str, ...], normalise: Callable[[str], str]
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
    # Those that went were valid: normalising them again gives what the tuple holds.
    gone = {last.given[i]: normalise(last.given[i]) for i in went}
    counts = last.counts
    if counts is None:  # `last.given` is ordered: no repeats, one value per given address
        counts = _counts(last.made())
    after = _pending(last, given, counts, normal, gone)
    added, removed = [], []
    for value in gone.values():
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
        last,
        after,
        tuple(sorted(set(added) - both)),
        tuple(sorted(set(removed) - both)),
        counts,
        last.given,
        given,
    )


def _pending(
    last: MemberState,
    given: tuple[str, ...],
    counts: dict[str, int],
    came: dict[str, str],
    went: dict[str, str],
) -> MemberState:
    """The state after the edit: the same base with what came and went added to what is
    pending (an address that comes back is simply no longer pending)."""
    if last.normalised is not None:
        base, pending_came, pending_went = (last.given, last.normalised), {}, set()
    else:
        base, pending_came, pending_went = last.base, dict(last.came), set(last.went)
    for address in went:
        if pending_came.pop(address, None) is None:
            pending_went.add(address)
    for address, value in came.items():
        if address in pending_went:
            pending_went.discard(address)
        else:
            pending_came[address] = value
    after = MemberState(given, None, counts, True, base, pending_came, pending_went)
    if len(pending_came) + len(pending_went) > MAX_PENDING:
        after.made()  # one copy now, instead of a pile of edits to walk later
    return after
