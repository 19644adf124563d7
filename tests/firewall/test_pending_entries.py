"""Sets edited by joins and leaves keep their new sorted tuple unmade (`setentries`) until
something reads it; whatever reads it sees exactly what a compile from cold makes."""

from __future__ import annotations

import random

import pytest

from sgweb.firewall import setentries
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import IpSet, LazyIpSet
from sgweb.firewall.render import render_ipsets
from tests.firewall import scenarios
from tests.firewall.test_member_edits import POOL

BIG = tuple(f"100.64.{i // 250}.{i % 250 + 1}" for i in range(2000))


def _step(rng: random.Random, members: set[str]) -> tuple[str, ...]:
    for _ in range(rng.randrange(1, 4)):
        members.symmetric_difference_update({rng.choice(POOL)})
    return tuple(sorted(members))


def test_a_join_writes_its_delta_and_rollback_without_making_the_sets_tuple() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    before = compile_host(scenarios.with_members(state, scenarios.DB, BIG), cache=cache)
    joined = tuple(sorted((*BIG, "198.51.100.77")))
    after = compile_host(scenarios.with_members(state, scenarios.DB, joined), cache=cache)
    (lazy,) = (ipset for ipset in after.ipsets if isinstance(ipset, LazyIpSet))
    delta, rollback = diff(before, after), diff(after, before)
    assert f"add {lazy.name} 198.51.100.77 -exist\n" == delta.ipsets.commit
    assert f"del {lazy.name} 198.51.100.77 -exist\n" == rollback.ipsets.commit
    assert not isinstance(lazy.source, tuple) and lazy.source._entries is None  # still unmade


@pytest.mark.parametrize("pending_limit", [3, setentries.MAX_PENDING])
def test_sets_rendered_after_many_edits_match_a_compile_from_cold(monkeypatch, pending_limit):
    monkeypatch.setattr(setentries, "MAX_PENDING", pending_limit)
    rng = random.Random(2026)
    members = set(rng.sample(POOL, 150))
    state = scenarios.host_state()
    cache = CompileCache()
    before = compile_host(
        scenarios.with_members(state, scenarios.DB, tuple(sorted(members))), cache=cache
    )
    lazy_seen = 0
    for step in range(80):
        changed = scenarios.with_members(state, scenarios.DB, _step(rng, members))
        after = compile_host(changed, cache=cache)
        lazy_seen += sum(isinstance(ipset, LazyIpSet) for ipset in after.ipsets)
        # The diff first (it must not need the tuples), then what reads them whole.
        delta = diff(before, after)
        if step % 7 == 6:
            cold = compile_host(changed)
            assert render_ipsets(after) == render_ipsets(cold)
            assert after.ipsets == cold.ipsets and cold.ipsets == after.ipsets
            assert [hash(a) for a in after.ipsets] == [hash(c) for c in cold.ipsets]
        assert delta.ipsets.prepare == "" or "swap" in delta.ipsets.commit
        before = after
    assert lazy_seen > 40


def test_pending_entries_hold_exactly_the_base_with_the_edits_applied() -> None:
    base = ("192.0.2.1", "192.0.2.3", "192.0.2.5", "198.51.100.0/24")
    entries = setentries.edited(base, ["192.0.2.2", "192.0.2.9"], ["192.0.2.3"])
    entries = setentries.edited(entries, ["192.0.2.3"], ["192.0.2.9", "192.0.2.1"])
    assert isinstance(entries, setentries.PendingEntries)
    expected = ("192.0.2.2", "192.0.2.3", "192.0.2.5", "198.51.100.0/24")
    assert len(entries) == 4 and "192.0.2.3" in entries and "192.0.2.1" not in entries
    assert entries.entries() == expected and entries.base is base


def test_a_lazy_set_copied_with_dataclasses_replace_keeps_its_members() -> None:
    import dataclasses

    pending = setentries.edited(("192.0.2.1",), ["192.0.2.2"], [])
    assert isinstance(pending, setentries.PendingEntries)
    lazy = LazyIpSet("IPv4x", "inet", pending, "g")
    copied = dataclasses.replace(lazy, edit=None)
    assert copied == IpSet("IPv4x", "inet", ("192.0.2.1", "192.0.2.2"), "g") == lazy
