"""Incremental applies in a real kernel end where a fresh full apply of the new state does.

Namespace A gets state 1 in full, then the delta 1 -> 2 with `--noflush`; namespace B gets state 2
in full. Our chains (iptables-save / ip6tables-save) and our sets (ipset save) must be equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from sgweb.firewall.compiler import CompileCache, compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost, LazyIpSet
from sgweb.firewall.model import HostState
from sgweb.kernel.apply import HostFirewall, PlainDelta
from sgweb.kernel.runner import SubprocessRunner
from tests.kernel.scenarios import add_remote_member, change_group_rules, make_ports, random_state

pytestmark = pytest.mark.kernel


@dataclass
class Pair:
    incremental: HostFirewall
    fresh: HostFirewall


def _namespace(runner: SubprocessRunner, name: str) -> HostFirewall:
    runner.run(["ip", "netns", "add", name])
    return HostFirewall(runner, name)


@pytest.fixture
def pair(kernel_runner: SubprocessRunner, netns_prefix: str) -> Iterator[Pair]:
    yield Pair(
        _namespace(kernel_runner, netns_prefix + "incr"),
        _namespace(kernel_runner, netns_prefix + "fresh"),
    )


def kernel_state(firewall: HostFirewall) -> dict[str, object]:
    """Our chains as {table/chain: rules in order}, plus our sets: independent of the order the
    kernel happens to list chains in."""
    result: dict[str, object] = {}
    for family in (4, 6):
        table = ""
        chains: dict[str, list[str]] = {}
        for line in firewall.save(family).splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.setdefault(f"{table}/{line[1:].split()[0]}", [])
            elif line.startswith("-A "):
                chains.setdefault(f"{table}/{line.split()[1]}", []).append(line)
        result[f"v{family}"] = chains
    result["ipsets"] = firewall.save_ipsets()
    return result


def apply_full(firewall: HostFirewall, compiled: CompiledHost) -> None:
    firewall.apply(diff(None, compiled, include_builtin_jumps=True)).raise_for_error()


def step(pair: Pair, previous: CompiledHost, new_state: HostState) -> CompiledHost:
    new = compile_host(new_state)
    delta = diff(previous, new)
    pair.incremental.apply(delta, rollback=diff(new, previous)).raise_for_error()
    pair.fresh.runner.run(["ip", "netns", "del", pair.fresh.netns])  # type: ignore[list-item]
    pair.fresh.runner.release_netns(pair.fresh.netns)  # type: ignore[arg-type]
    pair.fresh.runner.run(["ip", "netns", "add", pair.fresh.netns])  # type: ignore[list-item]
    apply_full(pair.fresh, new)
    assert kernel_state(pair.incremental) == kernel_state(pair.fresh)
    assert not [n for n in pair.incremental.ipset_names() if n.endswith("-n")], "temporary left"
    return new


@pytest.mark.parametrize("seed", range(6))
def test_a_changed_group_applied_incrementally_equals_a_fresh_apply(pair: Pair, seed: int) -> None:
    state = random_state(seed, make_ports(8), groups=4)
    compiled = compile_host(state)
    apply_full(pair.incremental, compiled)
    changed = change_group_rules(state, seed + 100)
    new = step(pair, compiled, changed)
    # ... and back again, which removes what the change added
    step(pair, new, state)


def test_a_membership_change_touches_only_ipsets(pair: Pair) -> None:
    state = random_state(7, make_ports(6), groups=3)
    state = replace(state, enable_ipset=True)
    compiled = compile_host(state)
    apply_full(pair.incremental, compiled)
    joined = add_remote_member(state, "192.0.2.250")
    new = compile_host(joined)
    delta = diff(compiled, new)
    assert delta.iptables == ()
    report = pair.incremental.apply(delta)
    assert report.ok and report.rule_lines == {}
    assert [name for name, _ in report.steps] == ["ipsets.prepare", "ipsets.commit"]
    step(pair, new, state)  # and leaving again


def test_plugging_unplugging_and_port_security_changes_converge(pair: Pair) -> None:
    ports = make_ports(6)
    state = random_state(11, ports, groups=3, psec_off_chance=0)
    compiled = compile_host(state)
    apply_full(pair.incremental, compiled)
    unplugged = replace(state, ports=state.ports[:-2])
    compiled = step(pair, compiled, unplugged)
    compiled = step(pair, compiled, state)
    first = state.ports[0]
    unprotected = replace(
        state, ports=(replace(first, port_security_enabled=False), *state.ports[1:])
    )
    compiled = step(pair, compiled, unprotected)
    no_groups = replace(state, ports=tuple(replace(p, security_groups=()) for p in state.ports))
    compiled = step(pair, compiled, no_groups)
    step(pair, compiled, state)


def test_a_refused_delta_leaves_the_previous_rules_in_force_and_names_the_line(
    pair: Pair,
) -> None:
    state = random_state(3, make_ports(5), groups=3)
    state = replace(state, enable_ipset=True)
    compiled = compile_host(state)
    apply_full(pair.incremental, compiled)
    apply_full(pair.fresh, compiled)
    before = kernel_state(pair.incremental)

    changed = change_group_rules(add_remote_member(state, "192.0.2.251"), 5)
    new = compile_host(changed)
    delta = diff(compiled, new)
    families = dict(delta.iptables)
    assert 4 in families or 6 in families
    # Tamper with the last family's text so the kernel refuses it after the first went in.
    last = max(families)
    bad_line = f"-A {state.chain_prefix}-sg-chain -j no-such-chain-here"
    families[last] = families[last].replace("COMMIT\n", bad_line + "\nCOMMIT\n", 1)
    tampered = PlainDelta(ipsets=delta.ipsets, iptables=tuple(sorted(families.items())))

    for rollback in (diff(new, compiled), None):
        report = pair.incremental.apply(tampered, rollback=rollback)
        assert not report.ok
        assert report.failed_step == f"iptables.{last}"
        assert "no-such-chain-here" in (report.error or "")
        assert report.offending_line_number is not None
        assert report.rolled_back or len(families) == 1
        assert kernel_state(pair.incremental) == before
        assert kernel_state(pair.incremental) == kernel_state(pair.fresh)


def test_missing_jumps_from_the_builtin_chains_are_put_back_once(pair: Pair) -> None:
    compiled = compile_host(random_state(2, make_ports(3)))
    pair.incremental.apply(diff(None, compiled)).raise_for_error()  # no built-in jumps
    apply_full(pair.fresh, compiled)
    assert kernel_state(pair.incremental) != kernel_state(pair.fresh)
    assert pair.incremental.ensure_builtin_jumps(compiled) > 0
    assert pair.incremental.ensure_builtin_jumps(compiled) == 0
    assert kernel_state(pair.incremental) == kernel_state(pair.fresh)
    # someone flushes FORWARD by hand: only that is repaired
    pair.incremental.runner.run(["iptables", "-F", "FORWARD"], netns=pair.incremental.netns)
    assert pair.incremental.ensure_builtin_jumps(compiled) == 2
    assert kernel_state(pair.incremental) == kernel_state(pair.fresh)


def test_members_joining_and_leaving_a_big_group_through_the_agents_cache_apply_as_a_fresh_compile(
    pair: Pair,
) -> None:
    # An agent's compile cache: the sets' entries stay pending on the last sorted tuple
    # (LazyIpSet); the deltas are add/del lines, and a full apply renders the sets whole.
    base = replace(random_state(7, make_ports(6), groups=3), enable_ipset=True)
    big = tuple(f"100.64.{i // 250}.{i % 250 + 1}" for i in range(2000))

    def with_members(members: tuple[str, ...]) -> HostState:
        listed = tuple((gid, tuple(sorted(members))) for gid, _ in base.remote_group_members)
        return replace(base, remote_group_members=listed)

    cache = CompileCache()
    previous = compile_host(with_members(big), cache=cache)
    apply_full(pair.incremental, previous)
    for members in (
        (*big, "192.0.2.250"),
        (*big, "192.0.2.250", "2001:db8::250"),
        (*big[1:], "192.0.2.250", "2001:db8::250"),
        big[1:],
    ):
        state = with_members(members)
        new = compile_host(state, cache=cache)
        assert any(isinstance(ipset, LazyIpSet) for ipset in new.ipsets)
        delta = diff(previous, new)
        assert delta.iptables == () and "swap" not in delta.ipsets.commit
        pair.incremental.apply(delta, rollback=diff(new, previous)).raise_for_error()
        _fresh_apply(pair, new)  # rendered from the lazy sets
        assert kernel_state(pair.incremental) == kernel_state(pair.fresh)
        assert new.ipsets == compile_host(state).ipsets
        previous = new


def _fresh_apply(pair: Pair, compiled: CompiledHost) -> None:
    pair.fresh.runner.run(["ip", "netns", "del", pair.fresh.netns])  # type: ignore[list-item]
    pair.fresh.runner.release_netns(pair.fresh.netns)  # type: ignore[arg-type]
    pair.fresh.runner.run(["ip", "netns", "add", pair.fresh.netns])  # type: ignore[list-item]
    apply_full(pair.fresh, compiled)
