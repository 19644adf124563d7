"""Always-on accounting (issue 12): every rule counter, every interval, as per-origin deltas.

A thread of the agent. Every `interval_s` it reads the host's counters (`accounting_read`: only
the chains that can have changed since the baseline), subtracts the baseline rule by rule
(rules are known by their identity, `accounting_layout`, so a rule keeps its history when others
are inserted above it, and a re-created rule whose counter went down counts from zero, never
negative), sums the deltas per origin and sends them to the control queue
(`sgweb.wire.accounting`).

The baseline (the counters last sent) is kept in Redis, so a restarted agent does not count
again what its predecessor sent, and an agent down for an hour sends that hour once. A document
that could not be sent (Redis restarting) is not lost: the baseline stays where it was and the
next document covers both intervals.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import sub
from typing import Any

import redis

from sgweb.firewall.compiled_rules import gc_paused
from sgweb.firewall.ir import CompiledHost
from sgweb.wire import accounting as wire
from worker.accounting_counts import BaselineStore, Counts, Readings, Snapshot
from worker.accounting_layout import (
    ROOTS,
    ChainKey,
    ChainLayout,
    Layout,
    LayoutBuilder,
    chain_key,
)
from worker.accounting_read import ChainReader

log = logging.getLogger("sgweb.agent.accounting")
HostCounts = dict[str, tuple[int, int]]  # host-wide chain -> (packets, bytes)


@dataclass
class Pending:
    """A document and the baseline it becomes once sent."""

    document: wire.Deltas
    snapshot: Snapshot
    host_chains: HostCounts
    read: tuple[ChainKey, ...] = ()  # the chains this reading read: the others kept their counts
    read_chains: int = 0


@dataclass
class Accountant(Readings[CompiledHost, Layout]):
    """The arithmetic: readings in, `Deltas` out; the baseline kept by rule identity."""

    builder: LayoutBuilder = field(default_factory=LayoutBuilder)
    host_baseline: HostCounts = field(default_factory=dict)

    def restore(self, saved: Snapshot, base: wire.ReadingId, at: float, hosts: HostCounts) -> None:
        """Start from a baseline a previous run of this agent saved."""
        self.baseline, self.base_id, self.base_at = saved, base, at
        self.host_baseline = hosts

    def deltas(
        self, layout: Layout, read: Snapshot, at: float, read_ms: float = 0.0, waiting: int = 0
    ) -> Pending:
        """This reading's deltas against the baseline, and the baseline it would become."""
        baseline = self.baseline
        counting = baseline is not None
        sums, snapshot, resets = subtract(layout.chains, read, baseline)
        host_now = host_chain_counts(layout, snapshot)
        document = wire.Deltas(
            host=self.host,
            reading=(self.run, self.seq + 1),
            base=self.base_id if counting else None,
            started_at=self.base_at if counting and self.base_at is not None else at,
            at=at,
            origins=_origin_deltas(layout, sums),
            chains=_subtract(host_now, self.host_baseline) if counting else (),
            read_ms=round(read_ms, 3),
            chains_waiting=waiting,
            resets=resets,
        )
        return Pending(document, snapshot, host_now, tuple(read))

    def sent(self, pending: Pending) -> None:
        """The document went out: its reading is the new baseline."""
        self.became(pending.document.reading, pending.document.at, pending.snapshot)
        self.host_baseline = pending.host_chains


def subtract(
    chains: dict[ChainKey, ChainLayout], read: Snapshot, baseline: Snapshot | None
) -> tuple[dict[int, tuple[int, int]], Snapshot, int]:
    """The arithmetic both streams share (ports here, routers' firewall rules in
    `worker.router_accounting`): per origin index that moved, (packets, bytes) counted since
    `baseline` (nothing while there is none), in the order the chains were read; the snapshot the
    reading makes (a chain not read keeps its baseline); how many rules' counters went down
    (re-created: all they count now is new)."""
    sums: dict[int, tuple[int, int]] = {}
    resets = 0
    # A chain not read keeps its baseline; a chain no longer applied is dropped. Only the chains
    # read are looked at one by one (a reading of a busy host reads a tenth of them).
    snapshot: Snapshot = (
        {key: counts for key, counts in baseline.items() if key in chains}
        if baseline is not None else {}
    )  # fmt: skip
    for key, counts in read.items():
        chain = chains.get(key)
        before = snapshot.get(key) if chain is not None else None
        snapshot[key] = counts
        if chain is not None and baseline is not None and before != counts:
            resets += _add_moves(sums, chain.origins, counts, before)
    return sums, snapshot, resets


def _add_moves(
    sums: dict[int, tuple[int, int]], origins: tuple[int, ...], now: Counts, then: Counts | None
) -> int:
    """Add what each rule of a chain counted since the baseline to its origin's sum; returns
    how many counters went down (re-created rules: their count since then is all new).

    Usually the baseline holds the same rules in the same places: the columns are subtracted
    whole (in C), and only a chain with a counter that went down is taken rule by rule."""
    if then is not None and then.same_rules(now):
        packets = list(map(sub, now.packets, then.packets))
        sizes = list(map(sub, now.bytes, then.bytes))
        if min(packets, default=0) >= 0 and min(sizes, default=0) >= 0:
            _add(sums, zip(origins, packets, sizes, strict=True))
            return 0
    moves, resets = _moves_by_identity(origins, now, then)
    _add(sums, moves)
    return resets


def _add(sums: dict[int, tuple[int, int]], moves: Iterable[tuple[int, int, int]]) -> None:
    """Tuples of ints, not lists: the garbage collector does not keep watching them."""
    get = sums.get
    for origin, packets, size in moves:
        if packets or size:
            total = get(origin)
            sums[origin] = (packets, size) if total is None else (
                total[0] + packets, total[1] + size
            )  # fmt: skip


def _moves_by_identity(
    origins: tuple[int, ...], now: Counts, then: Counts | None
) -> tuple[list[tuple[int, int, int]], int]:
    """(origin, packets, bytes) per rule by identity: a rule new since the baseline counts from
    zero, and so does one whose counter went down."""
    moves, resets = [], 0
    for identity, packets, size, origin in zip(
        now.ids, now.packets, now.bytes, origins, strict=True
    ):
        old = then.get(identity) if then is not None else None
        if old is None or packets < old[0] or size < old[1]:
            resets += old is not None
            old = (0, 0)
        moves.append((origin, packets - old[0], size - old[1]))
    return moves, resets


_new_tuple = tuple.__new__


def _origin_deltas(
    layout: Layout, sums: dict[int, tuple[int, int]]
) -> tuple[wire.OriginDelta, ...]:
    """One `OriginDelta` per origin that counted, in the order the chains met them. Made with
    `tuple.__new__` from the key plus the two counts: a busy reading makes 22,000 of them, and
    the named tuple's own constructor (a Python function) took half again as long."""
    keys = layout.origin_keys
    return tuple(
        [
            _new_tuple(wire.OriginDelta, keys[index] + (packets, size))
            for index, (packets, size) in sums.items()
            if packets or size
        ]
    )


def host_chain_counts(layout: Layout, snapshot: Snapshot) -> HostCounts:
    """Packets into the host-wide chains, from the rules that count them (see the layout): by
    position where the counts are of the layout's own rules (2,000 jumps into the sg-chain on a
    1000-port host), else by identity."""
    totals: HostCounts = {}
    for name, groups in layout.host_rules.items():
        packets = size = 0
        for key, identities, positions in groups:
            counts = snapshot.get(key)
            if counts is None:
                continue
            chain = layout.chains.get(key)
            if positions and chain is not None and counts.ids is chain.identities:
                packets += sum(map(counts.packets.__getitem__, positions))
                size += sum(map(counts.bytes.__getitem__, positions))
                continue
            for identity in identities:
                value = counts.get(identity)
                if value is not None:
                    packets += value[0]
                    size += value[1]
        totals[name] = (packets, size)
    return totals


def _subtract(now: HostCounts, before: HostCounts) -> tuple[tuple[str, int, int], ...]:
    out = []
    for name, (packets, size) in now.items():
        base = before.get(name, (0, 0))
        if packets < base[0] or size < base[1]:
            base = (0, 0)
        if (packets, size) != base:
            out.append((name, packets - base[0], size - base[1]))
    return tuple(out)


class AccountingReader(threading.Thread):
    def __init__(
        self, agent: Any, client: Any, prefix: str, send: Callable[[dict[str, Any]], None],
        interval_s: float, budget_ms: float = wire.DEFAULT_BUDGET_MS,
    ) -> None:  # fmt: skip
        super().__init__(name="sgweb-accounting", daemon=True)
        self.agent = agent
        self.client = client
        self.prefix = prefix
        self.send = send
        self.interval_s = interval_s
        self.budget_s = budget_ms / 1000 if budget_ms > 0 else None
        self.stopping = threading.Event()
        self.accountant = Accountant(agent.host)
        self.reader: ChainReader | None = None
        self.reads = 0
        self.read_s = 0.0
        self.cpu_s = 0.0
        self.unsent = 0
        self._loaded = False
        self.store = BaselineStore(client, wire.baseline_key(prefix, agent.host))
        self.settle_heap = False  # the agent's own reader: True (see `settle_heap`)

    def load_baseline(self) -> None:
        """The baseline an earlier run of this agent saved, if Redis still has it."""
        self._loaded = True
        reading, snapshot = self.store.load()
        if reading is None:
            log.info("no accounting baseline in Redis: counting starts with the first reading")
            return
        hosts = {name: (p, b) for name, (p, b) in reading.get("hosts", {}).items()}
        self.accountant.restore(
            snapshot, (float(reading["run"]), int(reading["seq"])), float(reading["at"]), hosts
        )

    def save_baseline(self, pending: Pending) -> None:
        """The reading just sent, as the baseline a restarted agent starts from."""
        document = pending.document
        meta = {"run": document.reading[0], "seq": document.reading[1], "at": document.at,
                "hosts": pending.host_chains}  # fmt: skip
        self.store.save(meta, pending.snapshot, pending.read)

    def tick(self) -> wire.Deltas | None:
        """One reading, its deltas sent and its baseline saved. The cyclic collector is paused
        meanwhile: a busy reading makes ~200,000 acyclic objects (pairs, dicts, the document),
        which set off ~160 collections (15-30 ms of a 1000-port host's reading); reference
        counting frees them all the same."""
        with gc_paused():
            return self._tick()

    def _tick(self) -> wire.Deltas | None:
        if self.agent.applied is None or not self.agent.kernel_known:
            return None
        if not self._loaded:
            self.load_baseline()
        if self.reader is None:
            self.reader = ChainReader(self.agent.firewall, self.budget_s)
        applied = self.agent.applied
        known = self.accountant._layout
        layout = self.accountant.layout(applied.compiled)  # outside the lock: applies go on
        if self.settle_heap and layout is not known:
            settle_heap()
        with self.agent.lock:  # not during an apply: positions must be the applied ones
            # The budget and the read time start here: not the wait for an apply to end, nor
            # the layout and heap work a new applied state costs once.
            started = time.perf_counter()
            if self.agent.applied is None or self.agent.applied.compiled is not applied.compiled:
                return None  # an apply came in between: its layout next time
            read = self.reader.read(
                layout, self.accountant.baseline, self.accountant.to_read(layout), started
            )
        read_s = time.perf_counter() - started
        walked = time.perf_counter()
        pending = self.accountant.deltas(
            layout, read, time.time(), read_s * 1000, len(self.reader.left)
        )
        pending.read_chains = self.reader.chains_read
        self.read_s += read_s
        self.reads += 1
        try:
            self.send(pending.document.as_dict())
        except Exception as exc:  # the broker is away: the next document covers this one too
            self.unsent += 1
            log.warning("accounting: could not send deltas (kept for the next one): %s", exc)
            return None
        self.accountant.sent(pending)
        try:
            self.save_baseline(pending)
        except Exception as exc:
            log.warning("accounting: could not save the baseline: %s", exc)
        self.reader.learn_after(time.perf_counter() - walked)
        return pending.document

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            cpu = time.thread_time()
            try:
                self.tick()
            except Exception:
                log.exception("accounting read failed")
            self.cpu_s += time.thread_time() - cpu
            self.stopping.wait(max(0.5, self.interval_s - (time.monotonic() - began)))


def settle_heap() -> None:
    """Collect what earlier states left, then put everything alive out of the garbage
    collector's reach (`gc.freeze`), once per applied state.

    A reading of a 1000-port host with every rule hit makes ~100,000 objects; that sets off
    full collections, and each walked the agent's whole heap (the compiled state: ~100 ms a
    collection, 8 of them in 5 readings, more than the kernel's side of the readings). Frozen,
    the compiled state is not walked; the next state unfreezes it, so an earlier state's garbage
    is still collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def start(
    agent: Any, redis_url: str, prefix: str, send: Callable[[dict[str, Any]], None],
    interval_s: float, budget_ms: float = wire.DEFAULT_BUDGET_MS,
) -> AccountingReader:  # fmt: skip
    client = redis.Redis.from_url(url=redis_url, socket_timeout=5, socket_connect_timeout=2)
    reader = AccountingReader(agent, client, prefix, send, interval_s, budget_ms)
    reader.settle_heap = True
    reader.start()
    return reader


__all__ = [
    "ROOTS", "Accountant", "AccountingReader", "Counts", "Pending", "chain_key", "start",
    "subtract",
]  # fmt: skip
