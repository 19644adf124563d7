"""A remote group's ipsets across compiles: sorted once, then edited by what came and went.

A port joining a group of 50,000 changes one entry of one set. `members_only` recognises a
change of members alone on the input as given and refills the last compile's sets from
`MemberMemo.edit` (no validation of the rest, no normalised tuple); `sorted_members` does the
same for a full compile from the validation's edit. Either way the entries are edited in place
of sorting them again (`_entries_edited`, pending on the last tuple: `setentries`), and the
edit is kept for the diff (`set_edit`, `IpSet.edit`). The compile cache (`CompileCache`) holds
what this needs between compiles.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Container, Iterable
from dataclasses import fields
from functools import partial
from typing import TYPE_CHECKING, cast

from sgweb.firewall.ir import CompiledHost, IpSet, LazyIpSet, ipset_token
from sgweb.firewall.memberedit import MemberState
from sgweb.firewall.model import HostState
from sgweb.firewall.setentries import (
    Entries,
    PendingEntries,
    edited,
    in_sorted,
    materialised,
)
from sgweb.firewall.setentries import (
    ip_key as _ip_key,
)
from sgweb.firewall.validate import address_version, normalize_cidr

if TYPE_CHECKING:
    from sgweb.firewall.compiler import CompileCache


# Every HostState field but the members: when none of them changed, only the ipsets can.
_NOT_MEMBERS = tuple(f.name for f in fields(HostState) if f.name != "remote_group_members")


def members_only(state: HostState, cache: CompileCache) -> CompiledHost | None:
    """A change of remote groups' members alone (a port joining a group of thousands), with
    ipsets on: the rules name the sets, not their members, so the last compile stands with
    its sets refilled. None when anything else changed (the full compile runs).

    `state` is the input as given and compared with the last input as given: validation is a
    function of it, so the rest of the state is still valid, and the members that came are
    checked by `MemberMemo.edit` (anything it cannot vouch for takes the full path, which says
    what is wrong). Nothing here makes a normalised members tuple."""
    if cache.last is None or not state.enable_ipset:
        return None
    before, compiled = cache.last
    for name in _NOT_MEMBERS:
        old, new = getattr(before, name), getattr(state, name)
        if old is not new and old != new:
            return None
    entries_of = _edited_groups(before.remote_group_members, state.remote_group_members, cache)
    if entries_of is None:
        return None
    ipsets = []
    for ipset in compiled.ipsets:
        edited_entries = entries_of.get(ipset.group_id)
        if edited_entries is None:  # the group's members are the very same: so is the set
            ipsets.append(ipset)
            continue
        v4, v6 = edited_entries
        entries = v4 if ipset.family == "inet" else v6
        token = ipset_token(ipset)
        if entries is token:
            ipsets.append(ipset)
            continue
        # Entries edited from these (a known edit) differ: no need to compare 50,000 to say so.
        edit = set_edit(cache, token, entries)
        if edit is not None or materialised(entries) != ipset.members:
            ipset = new_ipset(ipset.name, ipset.family, entries, ipset.group_id, edit)
            cache.ipsets[ipset.name] = ipset
        ipsets.append(ipset)
    return dataclasses.replace(compiled, ipsets=tuple(ipsets))


def _edited_groups(
    old: tuple[tuple[str, tuple[str, ...]], ...],
    new: tuple[tuple[str, tuple[str, ...]], ...],
    cache: CompileCache,
) -> dict[str, tuple[Entries, Entries]] | None:
    """The edited groups' sorted entries, from what came and went; None for anything but a
    few addresses of the same groups (in the same order) coming and going."""
    memo = cache.validation.members
    memo.begin()
    if len(old) != len(new):
        return None
    result = {}
    for (group_id, given), (old_id, old_given) in zip(new, old, strict=True):
        if group_id != old_id or type(given) is not tuple:
            return None
        if given is old_given:
            continue
        edit = memo.edit(group_id, old_given, given, normalize_cidr)
        last = cache.last_members.get(group_id)
        if edit is None or last is None or last[0] is not edit.before:
            return None
        changes = (edit.added, edit.removed, edit.present)
        result[group_id] = _entries_edited(cache, last[2], last[3], *changes)
        cache.last_members[group_id] = (edit.after, None, *result[group_id])
    return result


def same_entries(cache: CompileCache, ipset: IpSet, entries: Entries) -> bool:
    """Whether the set already holds these entries: by identity, else (no edit of this
    compile made them from the set's) by content."""
    token = ipset_token(ipset)
    if token is entries:
        return True
    if set_edit(cache, token, entries) is not None:
        return False
    return ipset.members == materialised(entries)


def new_ipset(
    name: str,
    family: str,
    entries: Entries,
    group_id: str,
    edit: tuple[object, tuple[str, ...], tuple[str, ...]] | None,
) -> IpSet:
    """An IpSet of these entries: lazy while they have edits pending (`setentries`)."""
    if isinstance(entries, PendingEntries):
        return LazyIpSet(name, family, entries, group_id, edit)
    return IpSet(name, family, entries, group_id, edit)


def sorted_members(
    cache: CompileCache, members: tuple[str, ...], group_id: str = ""
) -> tuple[Entries, Entries]:
    """A group's ipset entries (v4, v6), sorted (maybe with edits pending); remembered per
    members tuple and group (by the validation's `MemberState` when it made the tuple)."""
    last = cache.last_members.get(group_id) if group_id else None
    token: object = cache.validation.members.state(group_id, members) or members
    if last is not None and last[0] is token:
        return last[2], last[3]
    if last is not None:
        edit = cache.validation.members.edits.get(group_id)
        if edit is not None and edit.before is last[0] and edit.after is token:
            # Validation knows what came and went (`memberedit`): nothing here walks the
            # thousands, not even to hash the tuple.
            changes = (edit.added, edit.removed, edit.present)
            edited = _entries_edited(cache, last[2], last[3], *changes)
            cache.last_members[group_id] = (token, None, *edited)
            return edited
    cached = cache.sorted_members.get(members)
    if last is not None and cached is not None and last[2] is cached[0] and last[3] is cached[1]:
        return cached
    after: frozenset[str] | None = None
    if cached is None and last is not None:
        after = frozenset(members)
        before = last[1] if last[1] is not None else frozenset(_members_of(last[0]))
        added, removed = after - before, before - after
        if len(added) + len(removed) <= max(16, len(after) // 16):
            cached = _entries_edited(cache, last[2], last[3], added, removed, after)
            cache.sorted_members[members] = cached
    if cached is None:
        cached = _sorted_entries(members)
        cache.sorted_members[members] = cached
    if group_id:
        cache.last_members[group_id] = (token, after, *cached)
    return cached


def _members_of(token: object) -> tuple[str, ...]:
    """The members tuple a `last_members` token stands for."""
    if isinstance(token, MemberState):
        return token.made()
    return cast(tuple[str, ...], token)


def _sorted_entries(members: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (v4, v6) ipset entries of a group's members, sorted: one pass over the members,
    IPv4 host routes (most of them) cut to their address inline (see `_ipset_entries`)."""
    v4: set[str] = set()
    v6: set[str] = set()
    for member in members:
        if ":" in member:
            v6.update(_ipset_entries(member))
        elif member[-3:] == "/32":
            v4.add(member[:-3])
        else:
            v4.update(_ipset_entries(member))
    return _sorted_by_address(v4, socket.AF_INET), _sorted_by_address(v6, socket.AF_INET6)


def _sorted_by_address(entries: set[str], family: int) -> tuple[str, ...]:
    """`entries` in `_ip_key` order. When all are addresses (no prefix length: the usual
    case), the packed address alone is that order, and inet_pton is the key itself, with no
    Python call per entry."""
    if any("/" in entry for entry in entries):
        return tuple(sorted(entries, key=_ip_key))
    return tuple(sorted(entries, key=partial(socket.inet_pton, family)))


def _entries_edited(
    cache: CompileCache,
    v4: Entries,
    v6: Entries,
    added: Iterable[str],
    removed: Iterable[str],
    after: Container[str],
) -> tuple[Entries, Entries]:
    """The sorted entries once `added` members came and `removed` ones went (`after`: the
    members now), as edits pending on the last sorted tuple (`setentries`: the new tuple is
    made only when something reads it) instead of sorting or copying thousands again. What
    each family's entries gained and lost is kept for the sets made from them (`set_edit`).
    A family that neither gained nor lost keeps its very entries (the set is then unchanged
    by identity)."""
    given: dict[int, Entries] = {4: v4, 6: v6}
    gained: dict[int, dict[str, None]] = {4: {}, 6: {}}  # dicts: ordered, without repeats
    lost: dict[int, dict[str, None]] = {4: {}, 6: {}}
    produced_after = {e for m in added for e in _ipset_entries(m)}
    for member in removed:
        for entry in _ipset_entries(member):
            if entry in produced_after or _still_produced(entry, after):
                continue
            version = address_version(member)
            if _holds(given[version], entry):
                lost[version][entry] = None
    for member in added:
        for entry in _ipset_entries(member):
            version = address_version(member)
            if not _holds(given[version], entry):
                gained[version][entry] = None
    result = {4: v4, 6: v6}
    for version, old in given.items():
        if gained[version] or lost[version]:
            new = result[version] = edited(old, list(gained[version]), list(lost[version]))
            changes = (tuple(gained[version]), tuple(lost[version]))
            cache.set_edits[id(new)] = (new, old, *changes)
    return result[4], result[6]


def _holds(entries: Entries, entry: str) -> bool:
    if isinstance(entries, PendingEntries):
        return entry in entries
    return in_sorted(entries, entry)


def set_edit(
    cache: CompileCache, old: object, new: Entries
) -> tuple[object, tuple[str, ...], tuple[str, ...]] | None:
    """`IpSet.edit` for a set whose members go from `old` (its `ipset_token`) to `new`, if
    this compile made one from the other by a few additions and removals."""
    known = cache.set_edits.get(id(new))
    if known is None or known[0] is not new or known[1] is not old:
        return None
    return old, known[2], known[3]


def _still_produced(entry: str, members: Container[str]) -> bool:
    """Whether another member still yields this ipset entry (see `_ipset_entries`)."""
    host = f"{entry}/128" if ":" in entry else f"{entry}/32"
    if entry in members or host in members:
        return True
    return any(
        entry in halves and whole in members for whole, halves in _WHOLE_FAMILY_HALVES.items()
    )


_WHOLE_FAMILY_HALVES = {
    "0.0.0.0/0": ("0.0.0.0/1", "128.0.0.0/1"),
    "::/0": ("::/1", "8000::/1"),
}


def _ipset_entries(member: str) -> tuple[str, ...]:
    # Sets are hash:net so that allowed-address-pair ranges can be members; hash:net refuses a
    # zero prefix, so "everything" becomes its two halves (as Neutron's ipset manager does).
    # ipset lists host entries without a prefix length, so we emit them that way too.
    # Only a full-length prefix is a host: an IPv6 "/32" is a range of 2^96 addresses.
    if member.endswith("/128") or (member.endswith("/32") and ":" not in member):
        return (member.rsplit("/", 1)[0],)
    return _WHOLE_FAMILY_HALVES.get(member, (member,))
