"""Reading every counter of a host cheaply (issue 12): only the chains that can have changed.

Packets enter our chains only through the jumps in the built-in chains (FORWARD, INPUT,
OUTPUT), and move on only through jumps between our chains. So the reader reads the built-in
chains (a few rules) every time, and then, breadth first, only the chains whose entry jump
counted something since the baseline (plus chains the baseline does not know yet, and chains an
apply changed). A chain nobody entered did not count anything: its baseline stands. On an idle
host a read is three tiny dumps per family. With every port busy there is more to read than a
reading's time budget allows (`SGWEB_ACCOUNTING_BUDGET_MS`; the kernel's side of every chain
alone is over it, see below): the reader reads what the budget allows, first what the last
reading left, and leaves the rest to the next (`ChainReader.left`).

Each chain is one netlink dump (`NftCounterReader.read_chain_columns`: the counters found by
their encoding in the dump's buffers, no per-message parsing; the walk is
`accounting_counts.walk`, shared with the routers' reader). The kernel's side is the floor: it
writes every expression of every rule dumped (~475 bytes a rule with iptables-nft's matches;
`perf`: memcpy under nla_put is most of it). Measured on Linux 6.18 (2 cores, load 4-9): ~1.1
us a rule, 30-35 ms of system time for the 27,600 rules (3,005 chains) of one family of a
1000-port host, ~65 ms for both; the send/recv calls add 5-10 ms of user time. One dump of the
whole table costs more (85-90 ms of system time a family: the kernel walks the table's rules
again up to where it stopped for every 32 kB buffer), so it is not used. Without nf_tables
netlink, `iptables-save -c` per family.
"""

from __future__ import annotations

from collections.abc import Iterable
from time import perf_counter
from typing import Any

from sgweb.kernel.nftcounters import Columns, NftCounterReader, columns_of
from sgweb.kernel.readback import Counter, save_command
from worker.accounting_counts import Budget, Counts, Snapshot, walk
from worker.accounting_layout import ROOTS, TABLE, ChainKey, ChainLayout, Layout, chain_key

__all__ = ["ChainReader", "Counts", "Snapshot"]


def _jump_counts(rules: Iterable[tuple[Counter, str | None]], owned: frozenset[str]) -> Counts:
    counts: dict[str, tuple[int, int]] = {}
    for counter, target in rules:
        if target is not None and target in owned:
            packets, size = counts.get("jump:" + target, (0, 0))
            counts["jump:" + target] = (packets + counter.packets, size + counter.bytes)
    return Counts.of(counts)


# What a rule costs to read (the kernel's dump, the receive, the counters found) until the
# reader has measured it: ~2 us on a 1000-port host with 2 cores.
READ_RULE_S = 2e-6


class ChainReader:
    """Reads what changed (see the module docstring); `read` returns only chains it read."""

    def __init__(self, firewall: Any, budget_s: float | None = None) -> None:
        self.firewall = firewall
        self.netlink = NftCounterReader(firewall.netns)
        self.use_netlink = self.netlink.available()
        self.budget_s = budget_s  # None: read everything that can have changed, every time
        self.read_rule_s = READ_RULE_S  # learnt from the readings
        self.after_s = 0.0  # what the reading spent after its walk, lately (learnt)
        self.chains_read = 0
        self.mismatched = 0
        self.left: list[ChainKey] = []  # what the last read had no time for: read first next

    def read(
        self, layout: Layout, baseline: Snapshot | None, must: set[ChainKey],
        started: float | None = None,
    ) -> Snapshot:  # fmt: skip
        """`started`: when the reading began (`time.perf_counter`), for the budget; now if
        not given."""
        self.chains_read = self.mismatched = 0
        if not self.use_netlink:
            return self._read_saved(layout)
        started = perf_counter() if started is None else started
        read: Snapshot = {}
        queue: list[ChainKey] = [*self.left, *sorted(must)]  # what waits longest first
        for family in (4, 6):
            for root in ROOTS:
                key = chain_key(family, root)
                counts = _jump_counts(
                    self.netlink.read_chain_targets(root, family, TABLE), layout.owned
                )
                read[key] = counts
                before = baseline.get(key) if baseline is not None else None
                queue.extend(
                    chain_key(family, identity[5:])
                    for identity, packets, size in zip(
                        counts.ids, counts.packets, counts.bytes, strict=True
                    )
                    if before is None or before.get(identity) != (packets, size)
                )
        budget = None
        if self.budget_s is not None and baseline is not None:  # the first reading: everything
            budget = Budget(started + self.budget_s - self.after_s, self.read_rule_s)
        walked = perf_counter()
        done = walk(queue, layout.chains, baseline, self._columns, read, budget)
        self.chains_read, self.mismatched, self.left = done.chains_read, done.mismatched, done.left
        if done.rules_read >= 1000:  # fewer say little: each dump costs something of its own
            self.read_rule_s = _averaged(
                self.read_rule_s, (perf_counter() - walked) / done.rules_read
            )
        return read

    def learn_after(self, after_s: float) -> None:
        """What the reading spent after the walk (its deltas, document and baseline), kept off
        the next walk's time: the more a walk reads, the more comes after it, and the less the
        next one reads, until the two settle within the budget."""
        self.after_s = _averaged(self.after_s, after_s)

    def _columns(self, _key: ChainKey, chain: ChainLayout) -> Columns:
        return self.netlink.read_chain_columns(chain.name, chain.family, TABLE)

    def _read_saved(self, layout: Layout) -> Snapshot:
        """Everything, from `iptables-save -c` (where nf_tables netlink is not available)."""
        read: Snapshot = {}
        for family in (4, 6):
            rules: dict[str, list[tuple[Counter, str | None]]] = {}
            saved = self.firewall._run([save_command(family), "-c", "-t", TABLE]).stdout
            for line in saved.splitlines():
                if not line.startswith("["):
                    continue
                counts, _flag, chain, *rest = line.split()
                packets, size = counts.strip("[]").split(":")
                target = rest[rest.index("-j") + 1] if "-j" in rest[:-1] else None
                rules.setdefault(chain, []).append((Counter(int(packets), int(size)), target))
            for root in ROOTS:
                read[chain_key(family, root)] = _jump_counts(rules.get(root, []), layout.owned)
            for key, chain in layout.chains.items():
                found = rules.get(chain.name) if chain.family == family else None
                if found is None:
                    continue
                self.chains_read += 1
                if len(found) != len(chain.identities):
                    self.mismatched += 1
                    continue
                read[key] = Counts(
                    chain.identities, *columns_of((c.packets, c.bytes) for c, _target in found)
                )
        return read


def _averaged(known: float, measured: float) -> float:
    return 0.7 * known + 0.3 * measured
