"""A remote group's sorted ipset entries as the last sorted tuple plus a few pending edits.

A port joining a group of 50,000 changes one entry of one set. Building the new sorted tuple
(a list copy, an insert, a tuple copy, then freeing the old tuple: four passes touching every
entry) cost more than the rest of the join; yet only rendering a whole set (a full apply),
the drift check and the tracer read the entries, and the diff needs only what came and went.
So an edited family is a `PendingEntries`: the base tuple, the entries added (not in it) and
removed (in it), made into the sorted tuple once, on the first read, and cached. Edits pile up
on the same base until `MAX_PENDING`, then the tuple is made and becomes the next base (one
sort-free pass every few hundred joins).
"""

from __future__ import annotations

import bisect
import socket

# Pending edits kept before the tuple is made: each edit copies the pending ones (small), a
# materialisation copies the base (large).
MAX_PENDING = 256


def ip_key(entry: str) -> tuple[bytes, int]:
    """The ipset entries' order: by packed address, then prefix length (none: 0)."""
    address, _slash, length = entry.partition("/")
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.inet_pton(family, address), int(length) if length else 0


class PendingEntries:
    """Sorted ipset entries: `base` with `added` inserted and `removed` taken out (exactly:
    `added` are not in `base`, `removed` are). Immutable once made; `entries()` is the tuple."""

    __slots__ = ("_entries", "added", "base", "removed")

    def __init__(self, base: tuple[str, ...], added: frozenset[str], removed: frozenset[str]):
        self.base = base
        self.added = added
        self.removed = removed
        self._entries: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.base) + len(self.added) - len(self.removed)

    def __contains__(self, entry: object) -> bool:
        if not isinstance(entry, str):
            return False
        return entry in self.added or (entry not in self.removed and in_sorted(self.base, entry))

    def entries(self) -> tuple[str, ...]:
        """The sorted tuple (made on the first call: one copy of the base, then cached)."""
        if self._entries is None:
            edited = list(self.base)
            for index in sorted((_index(self.base, e) for e in self.removed), reverse=True):
                del edited[index]
            for entry in sorted(self.added, key=ip_key):
                edited.insert(bisect.bisect_left(edited, ip_key(entry), key=ip_key), entry)
            self._entries = tuple(edited)
        return self._entries


Entries = tuple[str, ...] | PendingEntries


def edited(current: Entries, gained: list[str], lost: list[str]) -> Entries:
    """`current` with `gained` added (none present now) and `lost` removed (all present now):
    pending on the same base, or the tuple itself once too much is pending."""
    if isinstance(current, PendingEntries):
        base, added, removed = current.base, set(current.added), set(current.removed)
    else:
        base, added, removed = current, set(), set()
    for entry in lost:
        if entry in added:
            added.discard(entry)
        else:
            removed.add(entry)
    for entry in gained:
        if entry in removed:
            removed.discard(entry)
        else:
            added.add(entry)
    result = PendingEntries(base, frozenset(added), frozenset(removed))
    if len(added) + len(removed) > MAX_PENDING:
        return result.entries()
    return result


def materialised(entries: Entries) -> tuple[str, ...]:
    return entries.entries() if isinstance(entries, PendingEntries) else entries


def in_sorted(entries: tuple[str, ...], entry: str) -> bool:
    """Whether `entry` is one of the sorted `entries` (a bisection)."""
    index = bisect.bisect_left(entries, ip_key(entry), key=ip_key)
    return index < len(entries) and entries[index] == entry


def _index(entries: tuple[str, ...], entry: str) -> int:
    index = bisect.bisect_left(entries, ip_key(entry), key=ip_key)
    if index == len(entries) or entries[index] != entry:
        raise ValueError(f"{entry} is not in the base entries")  # a broken invariant: never guess
    return index
