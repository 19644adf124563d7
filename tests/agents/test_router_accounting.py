"""The network node's firewall accounting without a kernel: which chains it reads, the deltas
per origin, counters carried by rule identity, resets as new baselines (issue 16)."""

from __future__ import annotations

from dataclasses import replace

from sgweb.firewall.fwaas.compiler import FORWARD_CHAIN, compile_router, policy_chain
from sgweb.firewall.fwaas.model import FirewallRule
from sgweb.kernel.nftcounters import Columns, columns_of
from sgweb.wire import accounting as wire
from tests.firewall.fwaas.example import APP_GROUP_OBJ, PROD_EGRESS, STATE, WEB_GROUP, WEB_GROUP_OBJ
from worker.accounting_counts import Counts, Snapshot
from worker.router_accounting import (
    RouterAccountant,
    RouterChainReader,
    RouterLayout,
    router_chain_key,
)

EGRESS4 = policy_chain(WEB_GROUP, 4, "egress")


def compiled(state=STATE):
    return {"r1": compile_router(state)}


def full_read(layout: RouterLayout, counts: dict[str, list[tuple[int, int]]]) -> Snapshot:
    """Every chain at zero, except the chains named (by name, IPv4) with the counts given."""
    read: Snapshot = {}
    for key, chain in layout.chains.items():
        given = counts.get(chain.name) if chain.family == 4 else None
        pairs = given or [(0, 0)] * len(chain.identities)
        read[key] = Counts(chain.identities, *columns_of(pairs))
    return read


def egress_counts(layout: RouterLayout, rule_index: int, packets: int) -> list[tuple[int, int]]:
    chain = layout.chains[router_chain_key(4, "r1", EGRESS4)]
    return [(packets, packets * 84) if i == rule_index else (0, 0)
            for i in range(len(chain.identities))]  # fmt: skip


def by_kind(document: wire.FirewallDeltas) -> dict[tuple[str, str | None], int]:
    out: dict[tuple[str, str | None], int] = {}
    for delta in document.rules:
        out[(delta.kind, delta.rule_id)] = out.get((delta.kind, delta.rule_id), 0) + delta.packets
    return out


def test_the_first_reading_is_a_baseline_and_counts_nothing() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    assert accountant.to_read(layout) == set(layout.chains)
    document, _ = accountant.deltas(layout, full_read(layout, {}), 100.0)
    assert document.base is None and document.rules == ()


def test_a_rules_hits_since_the_baseline_are_sent_with_router_group_and_direction() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    document, snapshot = accountant.deltas(layout, full_read(layout, {}), 100.0)
    accountant.sent(document, snapshot)
    read = full_read(layout, {EGRESS4: egress_counts(layout, 2, 4)})  # allow-icmp: index 2
    document, _ = accountant.deltas(layout, read, 110.0)
    assert document.base == (accountant.run, 1) and document.reading == (accountant.run, 2)
    [delta] = document.rules
    assert delta == wire.FirewallDelta(
        wire.FW_RULE, "r-icmp", "r1", WEB_GROUP, "egress", wire.ACCEPT, 4, 336
    )


def test_the_built_in_origins_are_counted_as_their_own_kinds() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    document, snapshot = accountant.deltas(layout, full_read(layout, {}), 100.0)
    accountant.sent(document, snapshot)
    forward = layout.chains[router_chain_key(4, "r1", FORWARD_CHAIN)]
    jumps = compile_router(STATE).family(4).jumps
    defaults = [(1, 60) if jump.default else (0, 0) for jump in jumps]
    read = full_read(layout, {EGRESS4: egress_counts(layout, 0, 2), FORWARD_CHAIN: defaults})
    assert len(defaults) == len(forward.identities)
    document, _ = accountant.deltas(layout, read, 110.0)
    kinds = by_kind(document)
    assert kinds[(wire.FW_INVALID, None)] == 2
    assert kinds[(wire.FW_DEFAULT_DROP, None)] == sum(1 for jump in jumps if jump.default)
    assert all(delta.verdict == wire.DROP for delta in document.rules)


def test_an_inserted_rule_leaves_the_earlier_rules_hits_counted_once() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    read = full_read(layout, {EGRESS4: egress_counts(layout, 2, 5)})
    document, snapshot = accountant.deltas(layout, read, 100.0)
    accountant.sent(document, snapshot)
    new_rule = FirewallRule(id="r-new", protocol="tcp", destination_port="443", action="allow")
    policy = replace(PROD_EGRESS, rules=(new_rule, *PROD_EGRESS.rules))
    state = replace(STATE, firewall_groups=(
        APP_GROUP_OBJ, replace(WEB_GROUP_OBJ, egress_policy=policy)))  # fmt: skip
    layout = accountant.layout(compiled(state))
    assert router_chain_key(4, "r1", EGRESS4) in accountant.to_read(layout), "the apply changed it"
    # allow-icmp is now at index 3 with its counter carried (5) plus 1 new packet
    read = full_read(layout, {EGRESS4: egress_counts(layout, 3, 6)})
    document, _ = accountant.deltas(layout, read, 110.0)
    assert by_kind(document) == {(wire.FW_RULE, "r-icmp"): 1}


def test_a_counter_that_went_down_counts_from_zero_never_negative() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    document, snapshot = accountant.deltas(
        layout, full_read(layout, {EGRESS4: egress_counts(layout, 2, 9)}), 100.0
    )
    accountant.sent(document, snapshot)
    document, _ = accountant.deltas(
        layout, full_read(layout, {EGRESS4: egress_counts(layout, 2, 3)}), 110.0
    )
    assert by_kind(document) == {(wire.FW_RULE, "r-icmp"): 3} and document.resets == 1


def test_a_chain_not_read_keeps_its_baseline_and_counts_nothing() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    document, snapshot = accountant.deltas(
        layout, full_read(layout, {EGRESS4: egress_counts(layout, 2, 9)}), 100.0
    )
    accountant.sent(document, snapshot)
    assert accountant.to_read(layout) == set()
    document, snapshot = accountant.deltas(layout, {}, 110.0)
    assert document.rules == ()
    assert (
        snapshot[router_chain_key(4, "r1", EGRESS4)]
        == accountant.baseline[router_chain_key(4, "r1", EGRESS4)]
    )


def test_the_document_survives_its_json_form() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    document, snapshot = accountant.deltas(layout, full_read(layout, {}), 100.0)
    accountant.sent(document, snapshot)
    document, _ = accountant.deltas(
        layout, full_read(layout, {EGRESS4: egress_counts(layout, 2, 4)}), 110.0
    )
    assert wire.parse_firewall_deltas(document.as_dict()) == document


class FakeNetlink:
    """Counters by chain name, as `NftCounterReader.read_chain_columns` returns them."""

    def __init__(self, layout: RouterLayout) -> None:
        self.pairs = {(c.name, c.family): [(0, 0)] * len(c.identities)
                      for c in layout.chains.values()}  # fmt: skip
        self.read: list[tuple[str, int]] = []

    def read_chain_columns(self, chain: str, family: int = 4) -> Columns:
        self.read.append((chain, family))
        return columns_of(self.pairs[(chain, family)])

    def close(self) -> None:
        pass


def test_an_idle_router_costs_one_read_per_family_and_a_counted_jump_reads_its_chain() -> None:
    accountant = RouterAccountant("network1")
    layout = accountant.layout(compiled())
    fake = FakeNetlink(layout)
    reader = RouterChainReader(lambda router_id: "unused", lambda *a, **k: None)
    reader.use_netlink = True
    reader._readers["r1"] = fake  # type: ignore[assignment]
    baseline = reader.read(layout, None, accountant.to_read(layout))
    assert reader.chains_read == len(layout.chains), "the first reading reads everything"
    fake.read.clear()
    reader.read(layout, baseline, set())
    assert sorted(fake.read) == [(FORWARD_CHAIN, 4), (FORWARD_CHAIN, 6)]
    jumps = compile_router(STATE).family(4).jumps
    into_egress = next(i for i, jump in enumerate(jumps) if jump.target == EGRESS4)
    fake.pairs[(FORWARD_CHAIN, 4)][into_egress] = (2, 168)
    fake.read.clear()
    read = reader.read(layout, baseline, set())
    assert sorted(fake.read) == [(FORWARD_CHAIN, 4), (FORWARD_CHAIN, 6), (EGRESS4, 4)]
    assert router_chain_key(4, "r1", EGRESS4) in read
