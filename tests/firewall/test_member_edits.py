"""A few members joining or leaving a big group: validated, sorted and diffed from what changed
(`sgweb.firewall.memberedit`), with exactly the results of doing it all again."""

from __future__ import annotations

import dataclasses
import random

import pytest

from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.errors import FirewallError
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.memberedit import MemberMemo, _changes
from sgweb.firewall.validate import validate_host_state
from tests.firewall import scenarios

POOL = [f"198.51.100.{i}" for i in range(1, 255)] + [f"2001:db8::{i:x}" for i in range(1, 99)]
POOL += ["203.0.113.0/28", "198.51.100.7/32", "0.0.0.0/0", "2001:db8:1::/64", "2001:DB8::5"]
# An IPv6 /32 is a range, not the host its address names (a host is /128).
POOL += ["2001:db8::/32", "2001:db8::/128", "2001:db8::"]


def without_edits(compiled: CompiledHost) -> CompiledHost:
    """The same sets with nothing known about how they were made: the diff compares them."""
    ipsets = tuple(dataclasses.replace(ipset, edit=None) for ipset in compiled.ipsets)
    return dataclasses.replace(compiled, ipsets=ipsets)


def plan(delta) -> tuple[str, str, str, str]:
    ipsets = delta.ipsets
    return ipsets.prepare, ipsets.commit, ipsets.cleanup, ipsets.abort


def test_deltas_and_rollbacks_from_the_compilers_edits_are_those_a_set_comparison_writes() -> None:
    rng = random.Random(1515)
    members = tuple(sorted(rng.sample(POOL, 200)))
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, members)
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    edited_sets = 0
    for _ in range(60):
        edited = set(members)
        for _ in range(rng.randrange(1, 6)):
            edited.symmetric_difference_update({rng.choice(POOL)})
        members = tuple(sorted(edited))
        changed = scenarios.with_members(state, scenarios.DB, members)
        after = compile_host(changed, cache=cache)
        assert validate_host_state(changed, memo=cache.validation) == validate_host_state(changed)
        edited_sets += sum(1 for ipset in after.ipsets if ipset.edit is not None)
        assert (
            after.ipsets
            == compile_host(scenarios.with_members(state, scenarios.DB, members)).ipsets
        )
        compared = (without_edits(before), without_edits(after))
        assert plan(diff(before, after)) == plan(diff(*compared))
        assert plan(diff(after, before)) == plan(diff(compared[1], compared[0]))
        before = after
    assert edited_sets > 30  # the edits were used, not only the comparison


def test_members_not_sorted_or_repeated_are_validated_in_full_with_the_same_result() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    members = tuple(sorted(POOL[:100]))
    compile_host(scenarios.with_members(state, scenarios.DB, members), cache=cache)
    for odd in (
        (*members, "198.51.100.250", "198.51.100.2"),  # not sorted
        tuple(sorted((*members, "198.51.100.3"))),  # a repeat
        tuple(sorted((*members[1:], "2001:DB8::5"))),  # a spelling to normalise
        tuple(sorted((*members, members[0]))),  # a repeat again, then it leaves
        members,
        (),  # everything leaves
        members,
    ):
        changed = scenarios.with_members(state, scenarios.DB, odd)
        assert compile_host(changed, cache=cache).ipsets == compile_host(changed).ipsets
        assert validate_host_state(changed, memo=cache.validation) == validate_host_state(changed)


def test_a_bad_address_joining_is_refused_as_in_a_full_validation() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    members = tuple(sorted(POOL[:100]))
    compile_host(scenarios.with_members(state, scenarios.DB, members), cache=cache)
    bad = scenarios.with_members(state, scenarios.DB, tuple(sorted((*members, "300.1.2.3"))))
    with pytest.raises(FirewallError) as edited:
        compile_host(bad, cache=cache)
    with pytest.raises(FirewallError) as fresh:
        compile_host(bad)
    assert str(edited.value) == str(fresh.value)


@pytest.mark.parametrize("odd", [None, 5, b"198.51.100.9"])
def test_a_member_that_is_not_a_string_is_refused_as_in_a_full_validation(odd) -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    members = tuple(sorted(POOL[:100]))
    compile_host(scenarios.with_members(state, scenarios.DB, members), cache=cache)
    bad = scenarios.with_members(state, scenarios.DB, (*members[:50], odd, *members[50:]))
    with pytest.raises(FirewallError) as edited:
        compile_host(bad, cache=cache)
    with pytest.raises(FirewallError) as fresh:
        compile_host(bad)
    assert str(edited.value) == str(fresh.value)


def test_the_same_address_leaving_in_one_spelling_and_joining_in_another_changes_nothing() -> None:
    memo = MemberMemo()

    def full(_gid: str, given: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(a if "/" in a else f"{a}/32" for a in given)

    def one(address: str) -> str:
        return full("", (address,))[0]

    memo.validate("g", ("192.0.2.1", "192.0.2.2"), full, one)
    memo.begin()
    after = memo.validate("g", ("192.0.2.1/32", "192.0.2.2"), full, one)
    assert after == ("192.0.2.1/32", "192.0.2.2/32")
    edit = memo.edits["g"]
    assert (edit.added, edit.removed) == ((), ())


def test_what_came_and_went_between_sorted_tuples_is_exactly_the_set_difference() -> None:
    # Changes far apart (one guessed run each) and close together (the guess is wrong and the
    # slices decide), at the ends and in the middle, including runs of adjacent changes.
    rng = random.Random(15)
    universe = [f"{i:05d}" for i in range(3000)]
    for _ in range(300):
        old = tuple(sorted(rng.sample(universe, rng.randrange(0, 400))))
        new_set = set(old)
        start = rng.randrange(0, 3000)
        for _ in range(rng.randrange(0, 20)):
            near = universe[min(2999, start + rng.randrange(0, 8))]
            far = rng.choice(universe)
            new_set.symmetric_difference_update({rng.choice((near, far))})
        new = tuple(sorted(new_set))
        found = _changes(old, new)
        if found is None:
            assert len(set(old) ^ new_set) > max(16, len(new) // 16)
            continue
        came, went = found
        assert [new[j] for j in came] == sorted(new_set - set(old))
        assert [old[i] for i in went] == sorted(set(old) - new_set)


def test_a_join_of_one_family_leaves_the_other_familys_set_the_very_same_object() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    v4 = tuple(f"198.51.100.{i}" for i in range(1, 200))
    steps = [
        ("2001:db8::1",),  # one IPv6 member
        ("2001:db8::1", "2001:db8::2"),  # another joins
        (),  # both leave: the IPv6 set is empty
        ("2001:db8::3", "2001:db8::4"),  # the family comes back
    ]
    before = compile_host(scenarios.with_members(state, scenarios.DB, v4), cache=cache)
    for v6 in steps:
        changed = scenarios.with_members(state, scenarios.DB, tuple(sorted((*v4, *v6))))
        after = compile_host(changed, cache=cache)
        assert after.ipsets == compile_host(changed).ipsets
        old_v4 = {ipset.name: ipset for ipset in before.ipsets if ipset.family == "inet"}
        new_v4 = {ipset.name: ipset for ipset in after.ipsets if ipset.family == "inet"}
        assert new_v4 and all(new_v4[name] is old_v4[name] for name in new_v4)
        before = after
