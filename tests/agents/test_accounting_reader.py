"""The agent's accounting arithmetic on made-up readings: deltas per origin, by rule identity.

The kernel side (a real netlink dump of a real namespace) is in tests/kernel; here a reading is
built from the compiled state itself, so every case is exact.
"""

from __future__ import annotations

from dataclasses import replace

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import INGRESS, SecurityGroupRule
from sgweb.kernel.readback import Counter
from sgweb.wire import accounting as wire
from tests.kernel.test_firewall_e2e import WEB_GROUP, WEB_PORT, state
from worker.accounting import Accountant, Reading, build_layout

INGRESS_CHAIN = f"neutron-openvswi-i{WEB_PORT.id[:10]}"


def reading(compiled: CompiledHost, counts: dict[tuple[str, str], int] | None = None) -> Reading:
    """Every owned chain at zero, except (chain, rule id or origin kind) -> packets."""
    counts = counts or {}
    out: Reading = {}
    for family in (4, 6):
        for table in compiled.family(family).tables:
            for chain in table.chains:
                rules = []
                for rule in chain.rules:
                    name = rule.origin.rule_id or rule.origin.kind
                    packets = counts.get((chain.name, name), 0) if family == 4 else 0
                    rules.append((Counter(packets, packets * 100), rule.target))
                out[(family, table.name, chain.name)] = rules
    return out


def origin(document: wire.Deltas, rule_id: str) -> tuple[int, int]:
    found = [o for o in document.origins if o.rule_id == rule_id]
    return (sum(o.packets for o in found), sum(o.bytes for o in found))


def test_the_first_reading_is_a_baseline_and_the_next_gives_per_origin_deltas() -> None:
    compiled = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    first = accountant.deltas(compiled, reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 5}), 10.0)
    assert first.document.base is None and first.document.origins == ()
    accountant.sent(first)
    second = accountant.deltas(compiled, reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 9}), 20.0)
    assert second.document.base == (1.0, 1) and second.document.reading == (1.0, 2)
    assert origin(second.document, "web-icmp") == (4, 400)
    [icmp] = [o for o in second.document.origins if o.rule_id == "web-icmp"]
    assert (icmp.port_id, icmp.direction, icmp.verdict) == (WEB_PORT.id, INGRESS, wire.ACCEPT)


def test_a_rule_inserted_above_keeps_the_history_of_the_rules_below() -> None:
    """Rules are known by their text, not their position."""
    before = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    accountant.sent(accountant.deltas(before, reading(before, {(INGRESS_CHAIN, "web-icmp"): 5}), 1))
    ssh = SecurityGroupRule("web-ssh", INGRESS, "IPv4", "tcp", 22, 22)
    group = replace(WEB_GROUP, rules=(ssh, *WEB_GROUP.rules))
    after = compile_host(replace(state(), security_groups=(group, *state().security_groups[1:])))
    pending = accountant.deltas(after, reading(after, {(INGRESS_CHAIN, "web-icmp"): 6}), 2)
    assert origin(pending.document, "web-icmp") == (1, 100)
    assert pending.document.resets == 0


def test_a_counter_that_went_down_is_a_new_baseline_never_negative_traffic() -> None:
    compiled = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    many = reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 50})
    accountant.sent(accountant.deltas(compiled, many, 1))
    pending = accountant.deltas(compiled, reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 3}), 2)
    assert origin(pending.document, "web-icmp") == (3, 300)
    assert pending.document.resets == 1
    assert all(o.packets >= 0 and o.bytes >= 0 for o in pending.document.origins)


def test_a_chain_caught_mid_apply_is_skipped_not_misattributed() -> None:
    compiled = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    accountant.sent(accountant.deltas(compiled, reading(compiled), 1))
    odd = reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 5})
    odd[(4, "filter", INGRESS_CHAIN)] = odd[(4, "filter", INGRESS_CHAIN)][1:]
    pending = accountant.deltas(compiled, odd, 2)
    assert accountant.skipped_chains == 1
    assert origin(pending.document, "web-icmp") == (0, 0)


def test_the_host_chains_are_counted_at_the_jumps_into_them() -> None:
    compiled = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    accountant.sent(accountant.deltas(compiled, reading(compiled), 1))
    counts = {("FORWARD", "jump"): 8, ("neutron-openvswi-sg-fallback", "fallback"): 2}
    pending = accountant.deltas(compiled, reading(compiled, counts), 2)
    chains = {name: packets for name, packets, _bytes in pending.document.chains}
    # FORWARD has two jumps of ours (neutron-filter-top and the wrapper chain): only one counts.
    assert chains == {wire.HOST_FORWARD: 8, wire.HOST_FALLBACK: 2}


def test_verdicts_say_what_ended_a_packets_way_through_a_port() -> None:
    layout = build_layout(compile_host(state()))
    verdicts = {(kind, verdict) for kind, _rule, port, _d, verdict in layout.origin_keys if port}
    assert ("sg-rule", wire.ACCEPT) in verdicts
    assert ("fallback", wire.DROP) in verdicts
    assert ("invalid", wire.DROP) in verdicts
    assert ("anti-spoofing", wire.PASS) in verdicts and ("anti-spoofing", wire.DROP) in verdicts


def test_a_document_survives_its_json_round_trip() -> None:
    compiled = compile_host(state())
    accountant = Accountant("h1", run=1.0)
    accountant.sent(accountant.deltas(compiled, reading(compiled), 1))
    document = accountant.deltas(compiled, reading(compiled, {(INGRESS_CHAIN, "web-icmp"): 2}), 2)
    assert wire.parse_deltas(document.document.as_dict()) == document.document
