"""Always-on accounting of a network node's firewall rules (issue 16, on issue 12's design).

A thread of the agent beside the port accounting (`worker.accounting`), on the same interval:
every `interval_s` it reads the firewall chains of every router the node has applied, subtracts
the baseline rule by rule with the port path's arithmetic (`accounting.subtract`: rules known by
identity, so a rule keeps its history when another is inserted above it; a counter that went
down is a new baseline), sums the deltas per origin and sends them to the control queue as a
`sgweb.wire.accounting.FirewallDeltas` document. Origins: the firewall rule (router, firewall
group, direction), and each policy chain's INVALID and established rules and the default drop
of each group's interfaces.

What is read: each router's `neutron-l3-agent-FORWARD` (a rule per interface and group), then
only the policy chains whose jumps counted something since the baseline, or that an apply
changed, or that the baseline does not know yet. One netlink dump per chain in the router's
namespace (`iptables-save -c` per family where nf_tables netlink is not available).

The baseline is kept in Redis (`wire.router_baseline_key`) as the port path keeps its own: a
restarted agent does not count again what its predecessor sent; a document that could not be
sent stays covered by the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sgweb.firewall.fwaas.compiler import (
    DEFAULT_CHAIN,
    FORWARD_CHAIN,
    PREAMBLE,
    CompiledFamily,
    CompiledRouter,
)
from sgweb.firewall.fwaas.model import ALLOW
from sgweb.kernel.nftcounters import Columns, NftCounterReader, columns_of
from sgweb.kernel.readback import save_command
from sgweb.wire import accounting as wire
from worker.accounting import subtract
from worker.accounting_counts import (
    BaselineStore,
    Counts,
    Readings,
    Snapshot,
    walk,
)
from worker.accounting_layout import ChainKey, ChainLayout, identities

log = logging.getLogger("sgweb.agent.router_accounting")

# kind, firewall rule, router, group, direction, verdict
FwOriginKey = tuple[str, str | None, str, str, str | None, str]
UNCOUNTED = 0  # origin index of rules that only pass packets on (jumps to policy chains)


def router_chain_key(family: int, router_id: str, chain: str) -> ChainKey:
    return f"{family}:{router_id}:{chain}"


@dataclass(frozen=True, slots=True)
class RouterLayout:
    chains: dict[ChainKey, ChainLayout]
    origin_keys: tuple[FwOriginKey | None, ...]  # index 0: not counted
    entries: dict[str, tuple[ChainKey, ...]]  # router -> its FORWARD chain keys (both families)


class RouterLayoutBuilder:
    """Per router, the chains to account; reused while the compiled router is the same object
    (the agent's compile cache hands unchanged routers back as they were)."""

    def __init__(self) -> None:
        self.keys: dict[FwOriginKey | None, int] = {None: UNCOUNTED}
        self._routers: dict[str, tuple[CompiledRouter, dict[ChainKey, ChainLayout]]] = {}

    def build(self, compiled: dict[str, CompiledRouter]) -> RouterLayout:
        chains: dict[ChainKey, ChainLayout] = {}
        entries: dict[str, tuple[ChainKey, ...]] = {}
        seen: dict[str, tuple[CompiledRouter, dict[ChainKey, ChainLayout]]] = {}
        for router_id, router in sorted(compiled.items()):
            cached = self._routers.get(router_id)
            if cached is None or cached[0] is not router:
                made: dict[ChainKey, ChainLayout] = {}
                for family in router.families:
                    made.update(self._family(router_id, family))
                cached = (router, made)
            seen[router_id] = cached
            chains.update(cached[1])
            entries[router_id] = tuple(
                router_chain_key(family.family, router_id, FORWARD_CHAIN)
                for family in router.families
            )
        self._routers = seen
        return RouterLayout(chains, tuple(self.keys), entries)

    def _index(self, key: FwOriginKey) -> int:
        return self.keys.setdefault(key, len(self.keys))

    def _family(self, router_id: str, compiled: CompiledFamily) -> dict[ChainKey, ChainLayout]:
        family = compiled.family
        bodies = dict(compiled.chains)
        chains: dict[ChainKey, ChainLayout] = {}
        forward_origins: list[int] = []
        jumps: list[tuple[int, str]] = []
        policy_of: dict[str, tuple[str, str]] = {}  # policy chain -> (group, direction)
        for position, jump in enumerate(compiled.jumps):
            if jump.default:
                forward_origins.append(self._index(
                    (wire.FW_DEFAULT_DROP, None, router_id, jump.group.id, jump.direction,
                     wire.DROP)
                ))  # fmt: skip
                continue
            forward_origins.append(UNCOUNTED)
            jumps.append((position, router_chain_key(family, router_id, jump.target)))
            policy_of[jump.target] = (jump.group.id, jump.direction)
        forward = bodies.get(FORWARD_CHAIN, ())
        chains[router_chain_key(family, router_id, FORWARD_CHAIN)] = ChainLayout(
            family, FORWARD_CHAIN, identities(list(forward)), tuple(forward_origins), tuple(jumps)
        )
        for name, (group, direction) in sorted(policy_of.items()):
            specs = bodies.get(name)
            if specs is None or name == DEFAULT_CHAIN:
                continue
            origins = [
                self._index((wire.FW_INVALID, None, router_id, group, direction, wire.DROP)),
                self._index((wire.FW_ESTABLISHED, None, router_id, group, direction, wire.ACCEPT)),
            ]
            for index in range(len(PREAMBLE), len(specs)):
                origin = compiled.origins.get((name, index))
                if origin is None:
                    origins.append(UNCOUNTED)
                    continue
                verdict = wire.ACCEPT if origin.action == ALLOW else wire.DROP
                origins.append(self._index(
                    (wire.FW_RULE, origin.rule_id, router_id, group, direction, verdict)
                ))  # fmt: skip
            chains[router_chain_key(family, router_id, name)] = ChainLayout(
                family, name, identities(list(specs)), tuple(origins), ()
            )
        return chains


@dataclass
class RouterAccountant(Readings[dict[str, CompiledRouter], RouterLayout]):
    """Readings in, `FirewallDeltas` out (the baseline kept by rule identity)."""

    builder: RouterLayoutBuilder = field(default_factory=RouterLayoutBuilder)

    def deltas(
        self, layout: RouterLayout, read: Snapshot, at: float, read_ms: float = 0.0
    ) -> tuple[wire.FirewallDeltas, Snapshot]:
        counting = self.baseline is not None
        sums, snapshot, resets = subtract(layout.chains, read, self.baseline)
        rules = []
        for index, (packets, size) in sorted(sums.items()):
            key = layout.origin_keys[index]
            if key is not None and (packets or size):
                rules.append(wire.FirewallDelta(*key, packets, size))
        document = wire.FirewallDeltas(
            host=self.host,
            reading=(self.run, self.seq + 1),
            base=self.base_id if counting else None,
            started_at=self.base_at if counting and self.base_at is not None else at,
            at=at,
            rules=tuple(rules),
            read_ms=round(read_ms, 3),
            resets=resets,
        )
        return document, snapshot

    def sent(self, document: wire.FirewallDeltas, snapshot: Snapshot) -> None:
        self.became(document.reading, document.at, snapshot)


class RouterChainReader:
    """Reads each router's entry chains, then the policy chains that can have changed."""

    def __init__(self, netns_of: Callable[[str], str], run: Callable[..., Any]) -> None:
        self.netns_of = netns_of
        self.run = run  # runner.run: for the iptables-save fallback
        self._readers: dict[str, NftCounterReader] = {}
        self.use_netlink: bool | None = None
        self.chains_read = 0
        self.mismatched = 0

    def _netlink(self, router_id: str) -> NftCounterReader:
        reader = self._readers.get(router_id)
        if reader is None:
            reader = self._readers[router_id] = NftCounterReader(self.netns_of(router_id))
        return reader

    def forget(self, keep: set[str]) -> None:
        """Close the sockets of routers the node no longer has."""
        for router_id in [r for r in self._readers if r not in keep]:
            self._readers.pop(router_id).close()

    def read(
        self, layout: RouterLayout, baseline: Snapshot | None, must: set[ChainKey]
    ) -> Snapshot:
        self.chains_read = self.mismatched = 0
        self.forget(set(layout.entries))
        if self.use_netlink is None:
            first = next(iter(layout.entries), None)
            if first is None:
                return {}
            self.use_netlink = self._netlink(first).available()
        read: Snapshot = {}
        if not self.use_netlink:
            for router_id in layout.entries:
                read.update(self._read_saved(layout, router_id))
            return read
        queue: list[ChainKey] = [key for keys in layout.entries.values() for key in keys]
        queue += sorted(must)
        done = walk(queue, layout.chains, baseline, self._columns, read)
        self.chains_read, self.mismatched = done.chains_read, done.mismatched
        return read

    def _columns(self, key: ChainKey, chain: ChainLayout) -> Columns | None:
        try:
            return self._netlink(key.split(":", 2)[1]).read_chain_columns(chain.name, chain.family)
        except OSError as exc:  # the namespace went away under us: next time
            log.debug("router accounting: %s: %s", key, exc)
            return None

    def _read_saved(self, layout: RouterLayout, router_id: str) -> Snapshot:
        read: Snapshot = {}
        for family in (4, 6):
            argv = [save_command(family), "-c", "-t", "filter"]
            saved = self.run(argv, netns=self.netns_of(router_id), check=False).stdout
            rules: dict[str, list[tuple[int, int]]] = {}
            for line in saved.splitlines():
                if line.startswith("["):
                    counts, _flag, chain, *_rest = line.split(" ", 3)
                    packets, size = counts.strip("[]").split(":")
                    rules.setdefault(chain, []).append((int(packets), int(size)))
            for key, chain in layout.chains.items():
                if chain.family != family or not key.startswith(f"{family}:{router_id}:"):
                    continue
                found = rules.get(chain.name)
                self.chains_read += 1
                if found is None or len(found) != len(chain.identities):
                    self.mismatched += 1
                    continue
                read[key] = Counts(chain.identities, *columns_of(found))
        return read


class RouterAccountingReader(threading.Thread):
    """The thread: read, subtract, send, keep the baseline (see the module docstring)."""

    def __init__(
        self, agent: Any, client: Any, prefix: str, send: Callable[[dict[str, Any]], None],
        interval_s: float,
    ) -> None:  # fmt: skip
        super().__init__(name="sgweb-router-accounting", daemon=True)
        self.agent = agent  # a worker.routers.RouterAgent
        self.client = client
        self.prefix = prefix
        self.send = send
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.accountant = RouterAccountant(agent.host)
        self.reader = RouterChainReader(agent.netns, agent.runner.run)
        self.reads = 0
        self.read_s = 0.0
        self.unsent = 0
        self._loaded = False
        self.store = BaselineStore(client, wire.router_baseline_key(prefix, agent.host))

    @property
    def key(self) -> str:
        return wire.router_baseline_key(self.prefix, self.agent.host)

    def load_baseline(self) -> None:
        self._loaded = True
        reading, snapshot = self.store.load()
        if reading is None:
            return
        self.accountant.baseline = snapshot
        self.accountant.base_id = (float(reading["run"]), int(reading["seq"]))
        self.accountant.base_at = float(reading["at"])

    def save_baseline(self, document: wire.FirewallDeltas, snapshot: Snapshot) -> None:
        meta = {"run": document.reading[0], "seq": document.reading[1], "at": document.at}
        self.store.save(meta, snapshot)

    def tick(self) -> wire.FirewallDeltas | None:
        agent = self.agent
        applied = agent.applied
        if applied is None or not agent.kernel_known:
            return None
        if not self._loaded:
            self.load_baseline()
        layout = self.accountant.layout(applied.compiled)
        started = time.perf_counter()
        with agent.lock:  # not during an apply: positions must be the applied ones
            if agent.applied is not applied:
                return None  # an apply came in between: its layout next time
            read = self.reader.read(
                layout, self.accountant.baseline, self.accountant.to_read(layout)
            )
        read_s = time.perf_counter() - started
        document, snapshot = self.accountant.deltas(layout, read, time.time(), read_s * 1000)
        self.read_s += read_s
        self.reads += 1
        try:
            self.send(document.as_dict())
        except Exception as exc:  # the broker is away: the next document covers this one too
            self.unsent += 1
            log.warning("router accounting: could not send deltas (kept for the next): %s", exc)
            return None
        self.accountant.sent(document, snapshot)
        try:
            self.save_baseline(document, snapshot)
        except Exception as exc:
            log.warning("router accounting: could not save the baseline: %s", exc)
        return document

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("router accounting read failed")
            self.stopping.wait(max(0.5, self.interval_s - (time.monotonic() - began)))


def start(
    agent: Any, client: Any, prefix: str, send: Callable[[dict[str, Any]], None],
    interval_s: float,
) -> RouterAccountingReader:  # fmt: skip
    """A reader on the router store's Redis connection. A node without routers reads nothing:
    `tick` returns at once while the agent has no applied router state."""
    reader = RouterAccountingReader(agent, client, prefix, send, interval_s)
    reader.start()
    return reader
