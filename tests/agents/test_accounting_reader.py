"""The agent's accounting on made-up kernels: deltas per origin by rule identity, and reads of
only the chains that can have changed.

The kernel side (real netlink dumps of a real namespace) is in tests/lab; here a fake netlink
answers from the compiled state itself, so every case is exact.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from types import SimpleNamespace

import pytest
import redis

from sgweb.firewall.compiler import compile_host
from sgweb.firewall.ir import CompiledHost
from sgweb.firewall.model import INGRESS, SecurityGroupRule
from sgweb.kernel.nftcounters import Columns, columns_of
from sgweb.kernel.readback import Counter
from sgweb.wire import accounting as wire
from tests.kernel.test_firewall_e2e import WEB_GROUP, WEB_PORT, state
from worker.accounting import Accountant, AccountingReader, Pending
from worker.accounting_counts import (
    BaselineStore,
    Counts,
    decode_counts,
    encode_counts,
)
from worker.accounting_layout import ROOTS, build_layout, chain_key
from worker.accounting_read import ChainReader

INGRESS_CHAIN = f"neutron-openvswi-i{WEB_PORT.id[:10]}"


class FakeKernel:
    """Per-rule packet counts by (chain, rule id or origin kind); the netlink reader's calls."""

    def __init__(self, compiled: CompiledHost) -> None:
        self.compiled = compiled
        self.counts: dict[tuple[str, str], int] = {}
        self.dumped: list[str] = []

    def _rules(self, chain: str, family: int) -> list[tuple[Counter, str | None]]:
        table = self.compiled.family(family).table("filter")
        found = table.chain(chain) if table is not None else None
        out = []
        for rule in found.rules if found is not None else ():
            packets = self.counts.get((chain, name_of(rule)), 0) if family == 4 else 0
            out.append((Counter(packets, packets * 100), rule.target))
        return out

    def read_chain_fast(self, chain: str, family: int, table: str) -> list[Counter]:
        self.dumped.append(chain)
        return [counter for counter, _ in self._rules(chain, family)]

    def read_chain_columns(self, chain: str, family: int, table: str) -> Columns:
        return columns_of((c.packets, c.bytes) for c in self.read_chain_fast(chain, family, table))

    def read_chain_targets(self, chain: str, family: int, table: str) -> list:
        return self._rules(chain, family)


def name_of(rule) -> str:
    """A rule as the tests name it: its security group rule id, its origin kind, or for a jump
    "->TARGET" (and "@PORT/DIRECTION" where a port's jump)."""
    origin = rule.origin
    if origin.kind != "jump":
        return origin.rule_id or origin.kind
    where = f"@{origin.port_id}/{origin.direction}" if origin.port_id else ""
    return f"->{rule.target}{where}"


def reader_for(kernel: FakeKernel) -> ChainReader:
    reader = ChainReader.__new__(ChainReader)
    reader.netlink, reader.use_netlink, reader.chains_read, reader.mismatched = kernel, True, 0, 0
    reader.budget_s, reader.left = None, []
    reader.read_rule_s = reader.after_s = 0.0
    return reader


def take(
    accountant: Accountant, kernel: FakeKernel, at: float, reader: ChainReader | None = None
) -> Pending:
    layout = accountant.layout(kernel.compiled)
    kernel.dumped.clear()
    reader = reader or reader_for(kernel)
    read = reader.read(layout, accountant.baseline, accountant.to_read(layout))
    pending = accountant.deltas(layout, read, at)
    accountant.sent(pending)
    return pending


def origin(pending: Pending, rule_id: str) -> tuple[int, int]:
    found = [o for o in pending.document.origins if o.rule_id == rule_id]
    return (sum(o.packets for o in found), sum(o.bytes for o in found))


def pings(kernel: FakeKernel, to_icmp: int) -> None:
    """`to_icmp` echo requests through FORWARD, the sg-chain and the web port's ingress chain."""
    for key in (*ENTRY, (INGRESS_CHAIN, "web-icmp")):
        kernel.counts[key] = kernel.counts.get(key, 0) + to_icmp


# The jumps an echo request to the web port takes before its ingress chain.
ENTRY = (
    ("FORWARD", "->neutron-openvswi-FORWARD"),
    ("neutron-openvswi-FORWARD", f"->neutron-openvswi-sg-chain@{WEB_PORT.id}/ingress"),
    ("neutron-openvswi-sg-chain", f"->{INGRESS_CHAIN}@{WEB_PORT.id}/ingress"),
)


@pytest.fixture
def kernel() -> FakeKernel:
    return FakeKernel(compile_host(state()))


@pytest.fixture
def readers():
    """Makes accounting readers of host h1 on the real Redis, under a prefix of the test's own;
    its keys are deleted afterwards."""
    client = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    prefix = f"sgwt-{secrets.token_hex(3)}"
    agent = SimpleNamespace(host="h1")
    try:
        yield lambda: AccountingReader(agent, client, prefix, lambda document: None, 10.0)
    finally:
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)


def test_the_first_reading_is_a_baseline_and_the_next_gives_per_origin_deltas(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    pings(kernel, 5)
    first = take(accountant, kernel, 10.0)
    assert first.document.base is None and first.document.origins == ()
    pings(kernel, 4)
    second = take(accountant, kernel, 20.0)
    assert second.document.base == (1.0, 1) and second.document.reading == (1.0, 2)
    assert origin(second, "web-icmp") == (4, 400)
    [icmp] = [o for o in second.document.origins if o.rule_id == "web-icmp"]
    assert (icmp.port_id, icmp.direction, icmp.verdict) == (WEB_PORT.id, INGRESS, wire.ACCEPT)


def test_an_idle_host_reads_only_its_builtin_chains(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    take(accountant, kernel, 1)  # the first read: everything
    assert len(kernel.dumped) == len(build_layout(kernel.compiled).chains)
    take(accountant, kernel, 2)
    assert kernel.dumped == []  # nothing entered our chains: their baselines stand


def test_traffic_reads_the_chains_on_its_way_and_nothing_else(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    take(accountant, kernel, 1)
    pings(kernel, 2)
    pending = take(accountant, kernel, 2)
    assert sorted(kernel.dumped) == sorted(
        ["neutron-openvswi-FORWARD", "neutron-openvswi-sg-chain", INGRESS_CHAIN]
    )
    assert origin(pending, "web-icmp") == (2, 200)
    # The next idle read keeps the counts it did not read, and sends nothing new.
    assert take(accountant, kernel, 3).document.origins == ()


def test_a_rule_inserted_above_keeps_the_history_of_the_rules_below(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    pings(kernel, 5)
    take(accountant, kernel, 1)
    ssh = SecurityGroupRule("web-ssh", INGRESS, "IPv4", "tcp", 22, 22)
    group = replace(WEB_GROUP, rules=(ssh, *WEB_GROUP.rules))
    kernel.compiled = compile_host(
        replace(state(), security_groups=(group, *state().security_groups[1:]))
    )
    pings(kernel, 1)
    pending = take(accountant, kernel, 2)
    assert origin(pending, "web-icmp") == (1, 100)
    assert pending.document.resets == 0


def test_a_counter_that_went_down_is_a_new_baseline_never_negative_traffic(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    pings(kernel, 50)
    take(accountant, kernel, 1)
    pings(kernel, 1)  # something entered, so the chains are read...
    kernel.counts[(INGRESS_CHAIN, "web-icmp")] = 3  # ...and the rule was re-created since
    pending = take(accountant, kernel, 2)
    assert origin(pending, "web-icmp") == (3, 300)
    assert pending.document.resets == 1
    assert all(o.packets >= 0 and o.bytes >= 0 for o in pending.document.origins)


def test_a_reading_out_of_time_leaves_the_rest_to_the_next_and_counts_every_packet_once(
    kernel,
) -> None:
    """With no time to spare (a budget of 0), each reading reads one chain, the one that waited
    longest first. Under traffic that never pauses the port's chain still gets its turn, and
    every echo request is counted once, when its chain is read."""
    accountant = Accountant("h1", run=1.0)
    reader = reader_for(kernel)
    reader.budget_s = 0.0
    take(accountant, kernel, 1, reader)  # the first reading reads everything: no budget
    counted = []
    for at in range(2, 14):
        if at < 10:
            pings(kernel, 1)  # traffic on every interval, then none
        pending = take(accountant, kernel, at, reader)
        assert len(kernel.dumped) <= 1
        counted.append(origin(pending, "web-icmp")[0])
    assert sum(counted[:8]) > 0, "its turn came while the traffic went on"
    assert sum(counted) == 8, counted
    assert reader.left == []


def test_a_chain_caught_mid_apply_is_skipped_not_misattributed(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    take(accountant, kernel, 1)
    pings(kernel, 5)
    layout = accountant.layout(kernel.compiled)
    reader = reader_for(kernel)
    original = kernel.read_chain_fast
    kernel.read_chain_fast = lambda chain, family, table: original(chain, family, table)[1:]  # type: ignore[method-assign]
    read = reader.read(layout, accountant.baseline, set())
    assert reader.mismatched >= 1
    assert origin(accountant.deltas(layout, read, 2), "web-icmp") == (0, 0)


def test_the_host_chains_are_counted_at_the_jumps_into_them(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    take(accountant, kernel, 1)
    pings(kernel, 8)
    kernel.counts[("neutron-openvswi-sg-fallback", "fallback")] = 2
    kernel.counts[(INGRESS_CHAIN, "fallback")] = 2
    pending = take(accountant, kernel, 2)
    chains = {name: packets for name, packets, _bytes in pending.document.chains}
    assert chains == {wire.HOST_FORWARD: 8, wire.HOST_SG_CHAIN: 8, wire.HOST_FALLBACK: 2}


def test_verdicts_say_what_ended_a_packets_way_through_a_port() -> None:
    layout = build_layout(compile_host(state()))
    verdicts = {(kind, verdict) for kind, _rule, port, _d, verdict in layout.origin_keys if port}
    assert ("sg-rule", wire.ACCEPT) in verdicts
    assert ("fallback", wire.DROP) in verdicts
    assert ("invalid", wire.DROP) in verdicts
    assert ("anti-spoofing", wire.PASS) in verdicts and ("anti-spoofing", wire.DROP) in verdicts
    assert chain_key(4, ROOTS[0]) == "4:filter:FORWARD"


def test_a_document_survives_its_json_round_trip(kernel) -> None:
    accountant = Accountant("h1", run=1.0)
    take(accountant, kernel, 1)
    pings(kernel, 2)
    document = take(accountant, kernel, 2).document
    assert wire.parse_deltas(document.as_dict()) == document


def test_a_saved_baseline_reads_back_as_it_was_sent(kernel, readers) -> None:
    """The baseline is saved as packed records (`accounting_counts`, for speed): a restarted
    agent must read back exactly the counts its predecessor sent."""
    first = readers()
    take(first.accountant, kernel, 1)
    pings(kernel, 7)
    pending = take(first.accountant, kernel, 2)
    first.save_baseline(pending)
    second = readers()
    second.load_baseline()
    assert second.accountant.baseline == pending.snapshot
    assert second.accountant.base_id == pending.document.reading


def test_a_baseline_saved_by_an_earlier_agent_as_json_still_loads_and_is_then_rewritten() -> None:
    """Agents before the packed records kept one JSON object per chain: after an upgrade the
    restarted agent starts from that baseline (nothing counted twice), and its first save
    replaces it with the new form."""
    client = redis.Redis.from_url("redis://127.0.0.1:6379/11")
    prefix = f"sgwt-{secrets.token_hex(3)}"
    key = wire.baseline_key(prefix, "h1")
    try:
        client.hset(key, mapping={
            "_reading": '{"run": 1.5, "seq": 7, "at": 20.0, "hosts": {"FORWARD": [3, 300]}}',
            "4:filter:neutron-openvswi-iweb": '{"a1b2c3d4.1":[5,500],"jump:x":[0,0]}',
        })  # fmt: skip
        store = BaselineStore(client, key)
        reading, snapshot = store.load()
        assert reading is not None and reading["seq"] == 7
        assert snapshot["4:filter:neutron-openvswi-iweb"].as_dict() == {
            "a1b2c3d4.1": (5, 500), "jump:x": (0, 0)
        }  # fmt: skip
        store.save({"run": 1.5, "seq": 8, "at": 30.0}, snapshot)
        assert client.hget(key, "4:filter:neutron-openvswi-iweb").startswith(b"\x01")
        assert BaselineStore(client, key).load()[1] == snapshot
    finally:
        client.delete(key)


def test_the_packed_baseline_round_trips_every_chain_even_empty_ones() -> None:
    snapshot = {
        "4:filter:a": Counts(("x.1", "y.1"), (1, 2**63), (60, 2**64 - 1)),
        "6:filter:b": Counts((), (), ()),
        "6:r1:neutron-l3-agent-FORWARD": Counts(("jump:z",), (0,), (0,)),
    }
    assert {key: decode_counts(encode_counts(c)) for key, c in snapshot.items()} == snapshot


def test_after_a_save_that_failed_the_next_one_writes_every_chain_again(kernel, readers) -> None:
    """A save writes only the chains the reading read; after one that failed (Redis away), what
    Redis holds is not known, so the next save writes them all, and a restarted agent reads
    back exactly the baseline of the last document sent."""
    first = readers()
    take(first.accountant, kernel, 1)
    first.save_baseline(take(first.accountant, kernel, 2))
    pings(kernel, 3)
    lost = take(first.accountant, kernel, 3)
    working = first.store.client
    first.store.client = redis.Redis.from_url("redis://127.0.0.1:1/0")  # nobody listens
    with pytest.raises(redis.ConnectionError):
        first.save_baseline(lost)
    first.store.client = working
    pending = take(first.accountant, kernel, 4)  # reads nothing: the pings were counted
    assert pending.read == tuple(chain_key(f, root) for f in (4, 6) for root in ROOTS)
    first.save_baseline(pending)
    second = readers()
    second.load_baseline()
    assert second.accountant.baseline == pending.snapshot
