"""A join compiles from what came and went without making the normalised members tuple
(`memberedit.MemberState`); whenever a full compile, a render or a validation asks for it,
what it gets is exactly what a compile from cold makes."""

from __future__ import annotations

import dataclasses
import random

import pytest

from sgweb.firewall import memberedit
from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.errors import FirewallError
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.firewall.validate import validate_host_state
from tests.firewall import scenarios
from tests.firewall.test_member_edits import POOL


def _rendered(compiled) -> tuple[str, str, str]:
    return render_iptables(compiled, 4), render_iptables(compiled, 6), render_ipsets(compiled)


def test_a_join_leaves_the_normalised_members_unmade() -> None:
    members = tuple(sorted(POOL[:200]))
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, members)
    cache = CompileCache()
    compile_host(state, cache=cache)
    joined = scenarios.with_members(state, scenarios.DB, tuple(sorted((*members, POOL[250]))))
    compile_host(joined, cache=cache)
    assert cache.validation.members.last[scenarios.DB].normalised is None
    # Asked for (a full validation), it is made, and it is the cold answer.
    assert validate_host_state(joined, memo=cache.validation) == validate_host_state(joined)


@pytest.mark.parametrize("pending_limit", [2, memberedit.MAX_PENDING])
def test_joins_and_leaves_between_full_compiles_render_as_a_compile_from_cold(
    monkeypatch, pending_limit
) -> None:
    monkeypatch.setattr(memberedit, "MAX_PENDING", pending_limit)
    rng = random.Random(77)
    members = set(rng.sample(POOL, 150))
    state = scenarios.host_state()
    cache = CompileCache()
    compile_host(scenarios.with_members(state, scenarios.DB, tuple(sorted(members))), cache=cache)
    for step in range(90):
        for _ in range(rng.randrange(1, 4)):
            members.symmetric_difference_update({rng.choice(POOL)})
        changed = scenarios.with_members(state, scenarios.DB, tuple(sorted(members)))
        if step % 10 == 9:  # something else changes too: the full compile asks for the tuple
            port = dataclasses.replace(changed.ports[-1], fixed_ips=(f"192.0.2.{100 + step}",))
            changed = dataclasses.replace(changed, ports=(*changed.ports[:-1], port))
            state = dataclasses.replace(state, ports=changed.ports)
        compiled = compile_host(changed, cache=cache)
        if step % 5 == 4 or step % 10 == 9:
            assert _rendered(compiled) == _rendered(compile_host(changed))


def test_after_a_refused_join_the_next_good_one_compiles_as_from_cold() -> None:
    members = tuple(sorted(POOL[:100]))
    state = scenarios.with_members(scenarios.host_state(), scenarios.WEB, members)
    state = scenarios.with_members(state, scenarios.DB, tuple(sorted(POOL[100:200])))
    cache = CompileCache()
    compile_host(state, cache=cache)
    good = scenarios.with_members(state, scenarios.WEB, tuple(sorted((*members, POOL[240]))))
    bad = scenarios.with_members(good, scenarios.DB, tuple(sorted((*POOL[100:200], "x.1"))))
    with pytest.raises(FirewallError):
        compile_host(bad, cache=cache)  # WEB's join (listed first) was taken in, then DB failed
    assert cache.validation.members.last[scenarios.WEB].given is good.remote_group_members[0][1]
    for after in (good, scenarios.with_members(good, scenarios.WEB, members), state):
        assert _rendered(compile_host(after, cache=cache)) == _rendered(compile_host(after))
