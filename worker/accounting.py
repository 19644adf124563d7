"""Always-on accounting (issue 12): every rule counter, every interval, as per-origin deltas.

A thread of the agent. Every `interval_s` it reads all counters of the host (one netlink dump
per family and table, `NftCounterReader.read_table`; `iptables-save -c` where nf_tables does not
answer), matches each kernel rule to the compiled rule at its position (chains whose rule count
differs from what was applied are skipped this round: an apply was in flight), and subtracts
the previous reading rule by rule. Rules are known by their chain and text, so a rule keeps its
history when others are inserted above it, and a re-created rule (its counter went down) counts
from zero. The sums per origin go to the control queue (`sgweb.wire.accounting`).

The baseline (the counters last sent) is kept in Redis, so a restarted agent does not count
again what its predecessor sent, and an agent down for an hour sends that hour once. A document
that could not be sent (Redis restarting) is not lost: the baseline stays where it was and the
next document covers both intervals.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from sgweb.firewall.ir import ACCEPT, BUILTIN_CHAINS, DROP, RETURN, CompiledHost, Rule
from sgweb.firewall.names import fallback_chain, forward_chain, input_chain, sg_chain
from sgweb.firewall.render import rendered_chain
from sgweb.kernel.nftcounters import NftCounterReader
from sgweb.kernel.readback import TABLES, Counter
from sgweb.wire import accounting as wire

log = logging.getLogger("sgweb.agent.accounting")

OriginKey = tuple[str, str | None, str | None, str | None, str]  # kind, rule, port, dir, verdict


@dataclass(frozen=True, slots=True)
class ChainLayout:
    """What the reader needs of one compiled chain: per position, its identity and origin."""

    identities: tuple[str, ...]  # crc32 of the rule text + occurrence: stable across inserts
    origins: tuple[int, ...]  # index into Layout.origin_keys


@dataclass(frozen=True, slots=True)
class Layout:
    chains: dict[tuple[int, str, str], ChainLayout]  # (family, table, chain)
    origin_keys: tuple[OriginKey, ...]
    host_chains: dict[str, str]  # kernel chain jumped to -> host chain name (HOST_CHAINS)
    fallback_chain: str
    prefix: str


def verdict_of(rule: Rule, fallback_chain: str) -> str:
    """Whether a rule ends a packet's way through a port's chains, and how."""
    if rule.target == DROP or rule.target == fallback_chain:
        return wire.DROP
    if rule.target in (ACCEPT, RETURN) and rule.origin.kind != "anti-spoofing":
        return wire.ACCEPT if rule.origin.port_id else wire.PASS
    return wire.PASS


def build_layout(compiled: CompiledHost) -> Layout:
    prefix = compiled.chain_prefix
    fallback = fallback_chain(prefix)
    keys: dict[OriginKey, int] = {}
    chains: dict[tuple[int, str, str], ChainLayout] = {}
    for family in (4, 6):
        for table in compiled.family(family).tables:
            for chain in table.chains:
                if not chain.owned or not chain.rules:
                    continue
                identities = _identities(rendered_chain(chain).split("\n"))
                indexes = []
                for rule in chain.rules:
                    origin = rule.origin
                    key = (origin.kind, origin.rule_id, origin.port_id, origin.direction,
                           verdict_of(rule, fallback))  # fmt: skip
                    indexes.append(keys.setdefault(key, len(keys)))
                chains[(family, table.name, chain.name)] = ChainLayout(identities, tuple(indexes))
    host_chains = {
        forward_chain(prefix): wire.HOST_FORWARD,
        input_chain(prefix): wire.HOST_INPUT,
        sg_chain(prefix): wire.HOST_SG_CHAIN,
    }
    return Layout(chains, tuple(keys), host_chains, fallback, prefix)


def _identities(lines: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = defaultdict(int)
    out = []
    for line in lines:
        digest = f"{zlib.crc32(line.encode()):08x}"
        seen[digest] += 1
        out.append(f"{digest}.{seen[digest]}")
    return tuple(out)


Reading = dict[tuple[int, str, str], list[tuple[Counter, str | None]]]
ChainCounts = dict[str, tuple[int, int]]  # rule identity -> (packets, bytes)
Snapshot = dict[str, ChainCounts]  # "family:table:chain" -> its rules' counts


class TableReader:
    """All counters of a host: netlink where it answers, `iptables-save -c` otherwise."""

    def __init__(self, agent: Any) -> None:
        self.firewall = agent.firewall
        self.netlink = NftCounterReader(agent.firewall.netns)
        self.use_netlink = self.netlink.available()

    def read(self) -> Reading:
        reading: Reading = {}
        for family in (4, 6):
            for table in TABLES:
                if self.use_netlink:
                    for chain, rules in self.netlink.read_table(family, table).items():
                        reading[(family, table, chain)] = rules
                    continue
                for (tbl, chain), counters in self.firewall.read_counters(family, (table,)).items():
                    reading[(family, tbl, chain)] = [(c, None) for c in counters]
        return reading


@dataclass
class Pending:
    """A document and the baseline it becomes once sent."""

    document: wire.Deltas
    snapshot: Snapshot
    host_chains: ChainCounts


class Accountant:
    """The arithmetic: readings in, `Deltas` out; the baseline kept by rule identity."""

    def __init__(self, host: str, run: float | None = None) -> None:
        self.host = host
        self.run = run if run is not None else time.time()
        self.seq = 0
        self.baseline: Snapshot | None = None  # None: nothing sent yet, nothing to subtract
        self.base_id: wire.ReadingId | None = None
        self.base_at: float | None = None
        self.host_baseline: ChainCounts = {}
        self._layout_for: CompiledHost | None = None
        self._layout: Layout | None = None
        self.skipped_chains = 0

    def layout(self, compiled: CompiledHost) -> Layout:
        if compiled is not self._layout_for or self._layout is None:
            self._layout_for, self._layout = compiled, build_layout(compiled)
        return self._layout

    def restore(self, saved: Snapshot, base: wire.ReadingId, at: float, hosts: ChainCounts) -> None:
        """Start from a baseline a previous run of this agent saved."""
        self.baseline, self.base_id, self.base_at = saved, base, at
        self.host_baseline = hosts

    def deltas(
        self, compiled: CompiledHost, reading: Reading, at: float, read_ms: float = 0.0
    ) -> Pending:
        """This reading's deltas against the baseline, and the baseline it would become."""
        layout = self.layout(compiled)
        sums = [[0, 0] for _ in layout.origin_keys]
        snapshot: Snapshot = {}
        baseline = self.baseline
        counting = baseline is not None
        resets = 0
        self.skipped_chains = 0
        for where, chain in layout.chains.items():
            rules = reading.get(where)
            if rules is None or len(rules) != len(chain.identities):
                self.skipped_chains += 1
                continue
            chain_key = f"{where[0]}:{where[1]}:{where[2]}"
            counts = {
                identity: (counter.packets, counter.bytes)
                for identity, (counter, _target) in zip(chain.identities, rules, strict=True)
            }
            snapshot[chain_key] = counts
            before_chain = baseline.get(chain_key) if baseline is not None else None
            if not counting or before_chain == counts:
                continue  # the usual idle chain: one dict comparison
            before_chain = before_chain or {}
            for identity, origin in zip(chain.identities, chain.origins, strict=True):
                now = counts[identity]
                before = before_chain.get(identity, (0, 0))
                if now == before:
                    continue
                if now[0] < before[0] or now[1] < before[1]:
                    resets += 1  # re-created: its count since then is all new
                    before = (0, 0)
                total = sums[origin]
                total[0] += now[0] - before[0]
                total[1] += now[1] - before[1]
        host_now = host_chain_counts(layout, reading)
        document = wire.Deltas(
            host=self.host,
            reading=(self.run, self.seq + 1),
            base=self.base_id if counting else None,
            started_at=self.base_at if counting and self.base_at is not None else at,
            at=at,
            origins=tuple(
                wire.OriginDelta(*layout.origin_keys[index], packets, size)
                for index, (packets, size) in enumerate(sums)
                if packets or size
            ),
            chains=_subtract(host_now, self.host_baseline) if counting else (),
            read_ms=round(read_ms, 3),
            resets=resets,
        )
        return Pending(document, snapshot, host_now)

    def sent(self, pending: Pending) -> None:
        """The document went out: its reading is the new baseline."""
        self.seq = pending.document.reading[1]
        self.baseline = pending.snapshot
        self.base_id, self.base_at = pending.document.reading, pending.document.at
        self.host_baseline = pending.host_chains


def host_chain_counts(layout: Layout, reading: Reading) -> ChainCounts:
    """Packets into the host-wide chains, counted at the rules that jump into them (in the
    built-in chains, found by their jump target; the fallback at its own DROP)."""
    totals: dict[str, list[int]] = {name: [0, 0] for name in wire.HOST_CHAINS}
    for (_family, table, chain), rules in reading.items():
        if table != "filter":
            continue
        if chain == layout.fallback_chain:
            for counter, _target in rules:
                totals[wire.HOST_FALLBACK][0] += counter.packets
                totals[wire.HOST_FALLBACK][1] += counter.bytes
            continue
        if chain not in BUILTIN_CHAINS and not chain.startswith(layout.prefix):
            continue
        for counter, target in rules:
            name = layout.host_chains.get(target or "")
            if name is not None:
                totals[name][0] += counter.packets
                totals[name][1] += counter.bytes
    return {name: (packets, size) for name, (packets, size) in totals.items()}


def _subtract(now: ChainCounts, before: ChainCounts) -> tuple[tuple[str, int, int], ...]:
    out = []
    for name, (packets, size) in now.items():
        base = before.get(name, (0, 0))
        if packets < base[0] or size < base[1]:
            base = (0, 0)
        if (packets, size) != base:
            out.append((name, packets - base[0], size - base[1]))
    return tuple(out)


class AccountingReader(threading.Thread):
    def __init__(self, agent: Any, client: Any, prefix: str, send: Any, interval_s: float) -> None:
        super().__init__(name="sgweb-accounting", daemon=True)
        self.agent = agent
        self.client = client
        self.prefix = prefix
        self.send = send
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.accountant = Accountant(agent.host)
        self.reader: TableReader | None = None
        self.reads = 0
        self.read_s = 0.0
        self.cpu_s = 0.0
        self.unsent = 0
        self._loaded = False
        self._saved: Snapshot = {}

    def load_baseline(self) -> None:
        """The baseline an earlier run of this agent saved, if Redis still has it."""
        self._loaded = True
        saved = self.client.hgetall(wire.baseline_key(self.prefix, self.agent.host))
        meta = saved.pop(b"_reading", None)
        if not meta:
            log.info("no accounting baseline in Redis: counting starts with the first reading")
            return
        reading = json.loads(meta)
        snapshot: Snapshot = {
            chain.decode(): {identity: (p, b) for identity, (p, b) in json.loads(value).items()}
            for chain, value in saved.items()
        }
        hosts = {name: (p, b) for name, (p, b) in reading.get("hosts", {}).items()}
        self.accountant.restore(
            snapshot, (float(reading["run"]), int(reading["seq"])), float(reading["at"]), hosts
        )
        self._saved = dict(snapshot)

    def save_baseline(self, pending: Pending) -> None:
        """Write the chains whose counts changed since the last save (all, if Redis lost it)."""
        key = wire.baseline_key(self.prefix, self.agent.host)
        document = pending.document
        if not self.client.exists(key):
            self._saved = {}
        changed = {
            chain: json.dumps(counts)
            for chain, counts in pending.snapshot.items()
            if self._saved.get(chain) != counts
        }
        gone = [chain for chain in self._saved if chain not in pending.snapshot]
        meta = {"run": document.reading[0], "seq": document.reading[1], "at": document.at,
                "hosts": pending.host_chains}  # fmt: skip
        pipe = self.client.pipeline(transaction=True)
        if gone:
            pipe.hdel(key, *gone)
        pipe.hset(key, mapping={"_reading": json.dumps(meta), **changed})
        pipe.execute()
        self._saved = dict(pending.snapshot)

    def tick(self) -> wire.Deltas | None:
        if self.agent.applied is None or not self.agent.kernel_known:
            return None
        if not self._loaded:
            self.load_baseline()
        if self.reader is None:
            self.reader = TableReader(self.agent)
        started = time.perf_counter()
        with self.agent.lock:  # not during an apply: positions must be the applied ones
            applied = self.agent.applied
            reading = self.reader.read()
        read_s = time.perf_counter() - started
        pending = self.accountant.deltas(applied.compiled, reading, time.time(), read_s * 1000)
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


def start(
    agent: Any, redis_url: str, prefix: str, send: Callable[[dict[str, Any]], None],
    interval_s: float,
) -> AccountingReader:  # fmt: skip
    client = redis.Redis.from_url(url=redis_url, socket_timeout=5, socket_connect_timeout=2)
    reader = AccountingReader(agent, client, prefix, send, interval_s)
    reader.start()
    return reader
