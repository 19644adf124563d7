"""Incremental deltas: only changed chains, ipset swaps, and ordering the kernel accepts."""

from __future__ import annotations

import dataclasses
import random

from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff, in_place_edits
from sgweb.firewall.ir import BUILTIN_CHAINS, Chain, Match, Origin, Rule
from sgweb.firewall.model import SecurityGroupRule
from sgweb.firewall.names import MAX_IPSET_NAME_LENGTH
from sgweb.firewall.render import render_iptables
from tests.firewall import scenarios


def _a_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("-A")]


def test_first_delta_without_builtin_jumps_never_names_a_builtin_chain() -> None:
    delta = diff(None, compile_host(scenarios.host_state()))
    for _family, text in delta.iptables:
        assert not any(
            line.startswith(("-A INPUT", "-A FORWARD", "-A OUTPUT", "-A PREROUTING"))
            for line in text.splitlines()
        )
    with_jumps = diff(None, compile_host(scenarios.host_state()), include_builtin_jumps=True)
    assert "-A FORWARD -j neutron-openvswi-FORWARD" in dict(with_jumps.iptables)[4]


def test_a_first_delta_with_builtin_jumps_is_the_full_restore_text_jumps_first() -> None:
    # The kernel takes a big transaction faster with the built-in chains' jumps before our
    # rules (bench.kernel); the first delta and render_iptables are then the very same text.
    compiled = compile_host(scenarios.host_state())
    texts = dict(diff(None, compiled, include_builtin_jumps=True).iptables)
    for family in (4, 6):
        assert texts[family] == render_iptables(compiled, family)
        filter_section = texts[family].split("*filter\n", 1)[1]
        rules = _a_lines(filter_section)
        first_own = next(i for i, line in enumerate(rules) if line.startswith("-A neutron-"))
        assert all(line.split()[1] in BUILTIN_CHAINS for line in rules[:first_own])
        assert not any(line.split()[1] in BUILTIN_CHAINS for line in rules[first_own:])


def test_no_change_gives_an_empty_delta() -> None:
    state = scenarios.host_state()
    delta = diff(compile_host(state), compile_host(state))
    assert delta.empty
    assert delta.changed_chains == () and delta.removed_chains == ()


def test_a_group_rule_change_edits_in_place_only_the_chains_of_ports_using_it() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    extra = SecurityGroupRule("db-redis", "ingress", "IPv4", "tcp", 6379, 6379)
    after_state = scenarios.with_group_rules(
        state, scenarios.DB, (*scenarios.DB_GROUP.rules, extra)
    )
    delta = diff(before, compile_host(after_state, cache=cache))
    assert delta.changed_chains == ("neutron-openvswi-ibbbbbbbb-0",)
    assert [family for family, _text in delta.iptables] == [4]
    text = dict(delta.iptables)[4]
    # One inserted rule, nothing re-declared: the chain's other rules keep their counters.
    assert text.startswith("*filter\n-I neutron-openvswi-ibbbbbbbb-0 ")
    assert ":neutron-openvswi-ibbbbbbbb-0" not in text
    assert "*raw" not in text


def test_without_in_place_a_changed_chain_is_redeclared_and_refilled() -> None:
    state = scenarios.host_state()
    extra = SecurityGroupRule("db-redis", "ingress", "IPv4", "tcp", 6379, 6379)
    after_state = scenarios.with_group_rules(
        state, scenarios.DB, (*scenarios.DB_GROUP.rules, extra)
    )
    delta = diff(compile_host(state), compile_host(after_state), in_place=False)
    text = dict(delta.iptables)[4]
    assert text.startswith("*filter\n:neutron-openvswi-ibbbbbbbb-0 - [0:0]\n")


def _play(edits: list[str], rules: list[str]) -> list[str]:
    """What the kernel does with -D N / -I N lines, on a list of rule tails."""
    rules = list(rules)
    for line in edits:
        op, _chain, number, *rest = line.split(" ", 3)
        if op == "-D":
            del rules[int(number) - 1]
        else:
            rules.insert(int(number) - 1, " " + rest[0])
    return rules


def test_in_place_edits_turn_any_old_chain_into_the_new_one_keeping_common_rules() -> None:
    rng = random.Random(12)
    pool = [f"-s 192.0.2.{n}/32 -j RETURN" for n in range(8)]
    for _round in range(300):
        old_tails = [rng.choice(pool) for _ in range(rng.randint(1, 8))]
        new_tails = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        old, new = _chain(old_tails), _chain(new_tails)
        edits = in_place_edits(old, new)
        if edits is None:
            assert not set(old_tails) & set(new_tails)
            continue
        assert _play(edits, [" " + t for t in old_tails]) == [" " + t for t in new_tails]
        assert sum(line.startswith("-D") for line in edits) <= len(old_tails)


def _chain(tails: list[str]) -> Chain:
    rules = []
    for tail in tails:
        address = tail.split()[1]
        rules.append(Rule("c", Match(source=address), "RETURN", Origin("sg-rule")))
    return Chain("c", tuple(rules))


def test_without_a_cache_unchanged_chains_are_still_recognised_by_content() -> None:
    state = scenarios.host_state()
    extra = SecurityGroupRule("db-redis", "ingress", "IPv4", "tcp", 6379, 6379)
    after_state = scenarios.with_group_rules(
        state, scenarios.DB, (*scenarios.DB_GROUP.rules, extra)
    )
    delta = diff(compile_host(state), compile_host(after_state))
    assert delta.changed_chains == ("neutron-openvswi-ibbbbbbbb-0",)


def test_membership_change_gives_zero_iptables_lines_and_a_set_swap() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    after = compile_host(
        scenarios.with_members(
            state, scenarios.DB, ("192.0.2.11", "203.0.113.99", "2001:db8:9::7")
        ),
        cache=cache,
    )
    delta = diff(before, after)
    assert delta.iptables == ()
    assert delta.ipsets.prepare == (
        "create IPv422222222-bbbb-4bbb-8-n hash:net family inet hashsize 1024 maxelem 65536 "
        "-exist\n"
        "flush IPv422222222-bbbb-4bbb-8-n\n"
        "add IPv422222222-bbbb-4bbb-8-n 192.0.2.11 -exist\n"
        "add IPv422222222-bbbb-4bbb-8-n 203.0.113.99 -exist\n"
    )
    assert delta.ipsets.commit == (
        "swap IPv422222222-bbbb-4bbb-8-n IPv422222222-bbbb-4bbb-8\n"
        "destroy IPv422222222-bbbb-4bbb-8-n\n"
    )
    assert delta.ipsets.cleanup == ""
    assert delta.ipsets.abort == "destroy IPv422222222-bbbb-4bbb-8-n\n"


def test_one_member_joining_or_leaving_a_big_group_adds_or_deletes_just_that_member() -> None:
    """A port joining a group of thousands must not refill the whole set on every host."""
    crowd = tuple(f"198.51.100.{i}" for i in range(1, 201))
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, crowd)
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    joined = (*crowd[1:], "203.0.113.7")  # one left, one came
    after = compile_host(scenarios.with_members(state, scenarios.DB, joined), cache=cache)
    delta = diff(before, after)
    assert delta.iptables == ()
    assert delta.ipsets.prepare == "" and delta.ipsets.abort == ""
    assert delta.ipsets.commit == (
        "add IPv422222222-bbbb-4bbb-8 203.0.113.7 -exist\n"
        "del IPv422222222-bbbb-4bbb-8 198.51.100.1 -exist\n"
    )
    undo = diff(after, before)  # the agent's rollback
    assert undo.ipsets.commit == (
        "add IPv422222222-bbbb-4bbb-8 198.51.100.1 -exist\n"
        "del IPv422222222-bbbb-4bbb-8 203.0.113.7 -exist\n"
    )


def test_temporary_set_names_fit_ipsets_limit() -> None:
    delta = diff(None, compile_host(scenarios.host_state()))
    names = [line.split()[1] for line in delta.ipsets.prepare.splitlines()]
    assert names and max(len(name) for name in names) <= MAX_IPSET_NAME_LENGTH


def test_a_removed_port_has_its_chains_flushed_then_deleted_after_the_rewrites() -> None:
    state = scenarios.host_state()
    delta = diff(compile_host(state), compile_host(scenarios.without_port(state, scenarios.PORT_E)))
    removed = (
        "neutron-openvswi-ieeeeeeee-0",
        "neutron-openvswi-oeeeeeeee-0",
        "neutron-openvswi-seeeeeeee-0",
    )
    assert delta.removed_chains == removed
    for _family, text in delta.iptables:
        filter_part = text.split("*filter", 1)[1]
        lines = filter_part.splitlines()
        first_delete = min(i for i, line in enumerate(lines) if line.startswith("-X"))
        assert all(not line.startswith("-A") for line in lines[first_delete:])
        for chain in removed:
            assert f":{chain} - [0:0]" in lines  # flushed by re-declaration
            assert f"-X {chain}" in lines
        assert not any("eeeeeeee" in line for line in _a_lines(filter_part))


def test_an_added_port_gets_new_chains_and_jumps() -> None:
    state = scenarios.without_port(scenarios.host_state(), scenarios.PORT_E)
    after = scenarios.host_state()
    delta = diff(compile_host(state), compile_host(after))
    assert {
        "neutron-openvswi-ieeeeeeee-0",
        "neutron-openvswi-oeeeeeeee-0",
        "neutron-openvswi-seeeeeeee-0",
        "neutron-openvswi-sg-chain",
        "neutron-openvswi-FORWARD",
        "neutron-openvswi-INPUT",
        "neutron-openvswi-PREROUTING",
    } == set(delta.changed_chains)
    assert delta.removed_chains == ()


def test_a_set_nobody_references_any_more_is_destroyed_in_cleanup() -> None:
    state = scenarios.host_state()
    no_remote = tuple(r for r in scenarios.WEB_GROUP.rules if r.remote_group_id is None)
    after = scenarios.with_group_rules(state, scenarios.WEB, no_remote)
    delta = diff(compile_host(state), compile_host(after))
    assert delta.ipsets.cleanup == (
        "destroy IPv422222222-bbbb-4bbb-8\ndestroy IPv622222222-bbbb-4bbb-8\n"
    )


def test_a_cache_returns_the_same_chain_objects_for_untouched_ports() -> None:
    state = scenarios.host_state()
    cache = CompileCache()
    before = compile_host(state, cache=cache)
    port_e = next(p for p in state.ports if p.id == scenarios.PORT_E)
    renamed = dataclasses.replace(port_e, name="renamed")  # names never reach rules
    ports = tuple(renamed if p.id == scenarios.PORT_E else p for p in state.ports)
    after = compile_host(dataclasses.replace(state, ports=ports), cache=cache)
    old = before.v4.table("filter").chain("neutron-openvswi-iaaaaaaaa-0")
    assert after.v4.table("filter").chain("neutron-openvswi-iaaaaaaaa-0") is old
    assert diff(before, after).empty


def test_members_edited_in_place_compile_exactly_as_a_fresh_compile_would() -> None:
    """The compiler bisects a few new members into the sorted set instead of sorting it again;
    whatever joins or leaves (hosts, ranges, /32 spellings, v6), the set is the same."""
    rng = random.Random(15)
    pool = [f"198.51.100.{i}" for i in range(1, 255)] + [f"2001:db8::{i:x}" for i in range(1, 99)]
    pool += ["203.0.113.0/28", "198.51.100.7/32", "0.0.0.0/0", "2001:db8:1::/64"]
    members = tuple(sorted(rng.sample(pool, 200)))
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, members)
    cache = CompileCache()
    compile_host(state, cache=cache)
    for _ in range(40):
        edited = set(members)
        for _ in range(rng.randrange(1, 6)):
            edited.symmetric_difference_update({rng.choice(pool)})
        members = tuple(sorted(edited))
        changed = scenarios.with_members(state, scenarios.DB, members)
        edited_compile, fresh = compile_host(changed, cache=cache), compile_host(changed)
        assert edited_compile.ipsets == fresh.ipsets
        for family in (4, 6):  # the chains too: a members-only change keeps the last compile's
            assert render_iptables(edited_compile, family) == render_iptables(fresh, family)
