"""The kernel accepts what we render, dumps it back as we rendered it, and an incremental delta
applied with --noflush leaves exactly the state of a fresh full apply (nf_tables backend)."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator

import pytest

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.incremental import diff
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.render import render_ipsets, render_iptables
from sgweb.kernel.runner import SubprocessRunner
from tests.firewall import scenarios

pytestmark = pytest.mark.kernel

PREFIX = "sgwc-"
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
SAVE = {4: "iptables-save", 6: "ip6tables-save"}
_COUNTERS = re.compile(r"\[\d+:\d+\]")
_INITVAL = re.compile(r" initval 0x[0-9a-f]+")
_MAC = re.compile(r"(--mac-source )(\S+)")


@pytest.fixture(scope="module")
def runner() -> Iterator[SubprocessRunner]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    runner = SubprocessRunner()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def make_netns(runner: SubprocessRunner) -> Iterator[object]:
    made: list[str] = []

    def make() -> str:
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        runner.run(["ip", "netns", "add", name])
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            runner.release_netns(name)
            runner.run(["ip", "netns", "del", name], check=False)


def _apply_full(runner: SubprocessRunner, netns: str, compiled: CompiledHost) -> None:
    runner.run(["ipset", "restore"], input=render_ipsets(compiled), netns=netns)
    for family in (4, 6):
        runner.run(
            [RESTORE[family], "--noflush"], input=render_iptables(compiled, family), netns=netns
        )


def _kernel_state(runner: SubprocessRunner, netns: str) -> dict[str, object]:
    state: dict[str, object] = {}
    for family in (4, 6):
        text = runner.run([SAVE[family]], netns=netns).stdout
        lines = [
            _COUNTERS.sub("[0:0]", line) for line in text.splitlines() if not line.startswith("#")
        ]
        state[f"v{family}-chains"] = sorted(line for line in lines if line.startswith(":"))
        state[f"v{family}-rules"] = [line for line in lines if line.startswith("-A")]
    ipsets = runner.run(["ipset", "save"], netns=netns).stdout.splitlines()
    # The kernel seeds each set's hash with a random initval.
    state["ipsets"] = sorted(_INITVAL.sub("", line) for line in ipsets)
    return state


def _rules_by_chain(lines: list[str]) -> dict[str, list[str]]:
    chains: dict[str, list[str]] = {}
    for line in lines:
        chains.setdefault(line.split()[1], []).append(line)
    return chains


def test_kernel_dumps_our_rules_back_exactly_as_rendered(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    netns = make_netns()
    compiled = compile_host(scenarios.host_state())
    _apply_full(runner, netns, compiled)
    state = _kernel_state(runner, netns)
    for family in (4, 6):
        ours = [
            line for line in render_iptables(compiled, family).splitlines() if line.startswith("-A")
        ]
        # iptables-nft prints MACs in lower case; the article (and we) print them upper case.
        kernel = [
            _MAC.sub(lambda m: m.group(1) + m.group(2).upper(), line)
            for line in state[f"v{family}-rules"]
        ]  # type: ignore[union-attr]
        assert _rules_by_chain(kernel) == _rules_by_chain(ours)


def test_kernel_accepts_the_no_ipset_variant(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    netns = make_netns()
    compiled = compile_host(scenarios.host_state(enable_ipset=False))
    assert compiled.ipsets == ()
    _apply_full(runner, netns, compiled)
    rules = _kernel_state(runner, netns)["v4-rules"]
    assert any("-s 198.51.100.7/32" in line for line in rules)  # type: ignore[union-attr]


def test_incremental_delta_leaves_the_state_of_a_fresh_full_apply(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    before = compile_host(scenarios.host_state())
    after = compile_host(scenarios.changed_state(scenarios.host_state()))
    updated, fresh = make_netns(), make_netns()
    _apply_full(runner, updated, before)

    delta = diff(before, after)
    assert delta.removed_chains  # a port left: its chains are deleted in the same restore
    runner.run(["ipset", "restore"], input=delta.ipsets.prepare, netns=updated)
    for family, text in delta.iptables:
        runner.run([RESTORE[family], "--noflush"], input=text, netns=updated)
    runner.run(["ipset", "restore"], input=delta.ipsets.commit, netns=updated)
    if delta.ipsets.cleanup:
        runner.run(["ipset", "restore"], input=delta.ipsets.cleanup, netns=updated)

    _apply_full(runner, fresh, after)
    assert _kernel_state(runner, updated) == _kernel_state(runner, fresh)


def test_membership_delta_swaps_sets_without_touching_iptables(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    state = scenarios.host_state()
    before = compile_host(state)
    after = compile_host(scenarios.with_members(state, scenarios.DB, ("203.0.113.9",)))
    netns, fresh = make_netns(), make_netns()
    _apply_full(runner, netns, before)

    delta = diff(before, after)
    assert delta.iptables == ()
    runner.run(["ipset", "restore"], input=delta.ipsets.prepare, netns=netns)
    runner.run(["ipset", "restore"], input=delta.ipsets.commit, netns=netns)
    _apply_full(runner, fresh, after)
    assert _kernel_state(runner, netns) == _kernel_state(runner, fresh)


def test_a_small_membership_delta_edits_the_set_in_place_as_a_full_apply_would_fill_it(
    make_netns, runner
) -> None:  # type: ignore[no-untyped-def]
    crowd = tuple(f"198.51.100.{i}" for i in range(1, 201))
    state = scenarios.with_members(scenarios.host_state(), scenarios.DB, crowd)
    before = compile_host(state)
    after = compile_host(scenarios.with_members(state, scenarios.DB, (*crowd[1:], "203.0.113.7")))
    netns, fresh = make_netns(), make_netns()
    _apply_full(runner, netns, before)

    delta = diff(before, after)
    assert delta.iptables == () and "swap" not in delta.ipsets.commit
    runner.run(["ipset", "restore"], input=delta.ipsets.commit, netns=netns)
    _apply_full(runner, fresh, after)
    assert _kernel_state(runner, netns) == _kernel_state(runner, fresh)


def test_ipset_abort_removes_what_prepare_created(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    netns = make_netns()
    delta = diff(None, compile_host(scenarios.host_state()))
    runner.run(["ipset", "restore"], input=delta.ipsets.prepare, netns=netns)
    assert runner.run(["ipset", "list", "-n"], netns=netns).stdout.strip()
    runner.run(["ipset", "restore"], input=delta.ipsets.abort, netns=netns)
    assert runner.run(["ipset", "list", "-n"], netns=netns).stdout.strip() == ""


def test_first_delta_with_builtin_jumps_equals_the_full_render(make_netns, runner) -> None:  # type: ignore[no-untyped-def]
    compiled = compile_host(scenarios.host_state())
    by_delta, by_full = make_netns(), make_netns()
    delta = diff(None, compiled, include_builtin_jumps=True)
    runner.run(["ipset", "restore"], input=delta.ipsets.prepare, netns=by_delta)
    for family, text in delta.iptables:
        runner.run([RESTORE[family], "--noflush"], input=text, netns=by_delta)
    runner.run(["ipset", "restore"], input=delta.ipsets.commit, netns=by_delta)
    _apply_full(runner, by_full, compiled)
    assert _kernel_state(runner, by_delta) == _kernel_state(runner, by_full)


def _random_step(state, rng):  # type: ignore[no-untyped-def]
    import dataclasses

    from sgweb.firewall.model import SecurityGroupRule

    choice = rng.randrange(5)
    groups = list(state.security_groups)
    if choice == 0:  # a group gains a rule
        index = rng.randrange(len(groups))
        port = rng.randrange(1, 65535)
        rule = SecurityGroupRule(f"rnd-{port}", "ingress", "IPv4", "tcp", port, port)
        groups[index] = dataclasses.replace(groups[index], rules=(*groups[index].rules, rule))
        return dataclasses.replace(state, security_groups=tuple(groups))
    if choice == 1:  # a group loses its last rule
        index = rng.randrange(len(groups))
        groups[index] = dataclasses.replace(groups[index], rules=groups[index].rules[:-1])
        return dataclasses.replace(state, security_groups=tuple(groups))
    ports = list(state.ports)
    if choice == 2 and len(ports) > 1:  # a port leaves
        ports.pop(rng.randrange(len(ports)))
        return dataclasses.replace(state, ports=tuple(ports))
    if choice == 3:  # a port changes its groups
        index = rng.randrange(len(ports))
        chosen = tuple(g.id for g in groups if rng.random() < 0.5)
        ports[index] = dataclasses.replace(ports[index], security_groups=chosen)
        return dataclasses.replace(state, ports=tuple(ports))
    member = f"198.51.100.{rng.randrange(1, 255)}"  # a remote port joins a group
    return scenarios.with_members(state, scenarios.DB, (*state.members(scenarios.DB), member))


def test_random_change_sequences_applied_incrementally_match_fresh_applies(  # type: ignore[no-untyped-def]
    make_netns, runner
) -> None:
    import random

    from sgweb.firewall.compiler import CompileCache

    rng = random.Random(20260101)
    cache = CompileCache()
    state = scenarios.changed_state(scenarios.host_state())
    compiled = compile_host(state, cache=cache)
    live = make_netns()
    _apply_full(runner, live, compiled)
    for _step in range(8):
        state = _random_step(state, rng)
        new = compile_host(state, cache=cache)
        delta = diff(compiled, new)
        runner.run(["ipset", "restore"], input=delta.ipsets.prepare or "\n", netns=live)
        for family, text in delta.iptables:
            runner.run([RESTORE[family], "--noflush"], input=text, netns=live)
        for step in (delta.ipsets.commit, delta.ipsets.cleanup):
            if step:
                runner.run(["ipset", "restore"], input=step, netns=live)
        fresh = make_netns()
        _apply_full(runner, fresh, new)
        assert _kernel_state(runner, live) == _kernel_state(runner, fresh)
        compiled = new


def test_remote_group_members_may_be_address_pair_ranges_of_either_family(
    make_netns, runner
) -> None:  # type: ignore[no-untyped-def]
    # Allowed address pairs may be CIDRs, so remote-group sets hold networks; "everything" is
    # stored as its two halves because hash:net refuses a zero prefix.
    state = scenarios.with_members(
        scenarios.host_state(),
        scenarios.DB,
        ("198.51.100.0/25", "0.0.0.0/0", "203.0.113.9/32", "2001:db8:9::/64", "::/0"),
    )
    netns = make_netns()
    compiled = compile_host(state)
    _apply_full(runner, netns, compiled)
    saved = runner.run(["ipset", "save"], netns=netns).stdout
    for entry in ("198.51.100.0/25", "0.0.0.0/1", "128.0.0.0/1", "203.0.113.9 "):
        assert f" {entry}" in saved.replace("\n", " \n")
    assert "2001:db8:9::/64" in saved and "8000::/1" in saved
