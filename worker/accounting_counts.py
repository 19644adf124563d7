"""A chain's counters as the accounting keeps them (issue 12), the walk that reads only the
chains that can have changed, and the baseline's form in Redis; shared by the port stream
(`worker.accounting`) and the routers' firewall stream (`worker.router_accounting`).

`Counts` holds a chain's rule identities (the layout's own tuple, shared, not copied) beside two
tuples of integers, packets and bytes per rule, as the netlink reader returns them. A host with
every rule hit reads 61,000 rules every interval: a dict of pairs per chain made 61,000 pairs and
6,000 dicts only to compare and subtract them one by one. As columns, an unchanged chain is one
tuple comparison, and a changed one is subtracted with `map(operator.sub, ...)`, both in C.
"""

from __future__ import annotations

import functools
import json
import struct
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Generic, Protocol, TypeVar

from sgweb.kernel.nftcounters import Columns
from sgweb.wire.accounting import ReadingId
from worker.accounting_layout import ChainKey, ChainLayout


class Counts:
    """Counters of one chain's rules by position, with the identities they belong to."""

    __slots__ = ("_index", "bytes", "ids", "packets")

    def __init__(
        self, ids: tuple[str, ...], packets: tuple[int, ...], sizes: tuple[int, ...]
    ) -> None:
        self.ids = ids
        self.packets = packets
        self.bytes = sizes
        self._index: dict[str, int] | None = None

    @classmethod
    def of(cls, pairs: Mapping[str, tuple[int, int]]) -> Counts:
        """From identity -> (packets, bytes): rules listed by hand (tests, the built-in chains'
        jumps, baselines saved as JSON by earlier agents)."""
        return cls(
            tuple(pairs), tuple(p for p, _ in pairs.values()), tuple(b for _, b in pairs.values())
        )

    def same_rules(self, other: Counts) -> bool:
        return self.ids is other.ids or self.ids == other.ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Counts):
            return NotImplemented
        return (
            self.packets == other.packets and self.bytes == other.bytes and self.same_rules(other)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable index; compared, never hashed

    def __repr__(self) -> str:
        return f"Counts({self.as_dict()!r})"

    def get(self, identity: str) -> tuple[int, int] | None:
        index = self._index
        if index is None:
            index = self._index = {identity: at for at, identity in enumerate(self.ids)}
        at = index.get(identity)
        return None if at is None else (self.packets[at], self.bytes[at])

    def as_dict(self) -> dict[str, tuple[int, int]]:
        return {i: (p, b) for i, p, b in zip(self.ids, self.packets, self.bytes, strict=True)}


Snapshot = dict[ChainKey, Counts]


def moved_jumps(chain: ChainLayout, counts: Counts, before: Counts | None) -> Iterator[str]:
    """The keys of the chains the chain's jumps lead to whose counters moved since `before` (all
    of them when there is no before): packets went that way, so the target may have counted."""
    packets, sizes = counts.packets, counts.bytes
    if before is not None and before.same_rules(counts):
        old_packets, old_sizes = before.packets, before.bytes
        for position, target in chain.jumps:
            if packets[position] != old_packets[position] or sizes[position] != old_sizes[position]:
                yield target
        return
    for position, target in chain.jumps:
        if before is None or before.get(chain.identities[position]) != (
            packets[position],
            sizes[position],
        ):
            yield target


@dataclass
class Walk:
    """What a walk did: chains and rules read, chains left out as mismatched (caught mid-apply:
    their baselines stand), and the chains it had no time left for, in the order it would have
    read them (the reader's next walk starts with them)."""

    chains_read: int = 0
    rules_read: int = 0
    mismatched: int = 0
    left: list[ChainKey] = field(default_factory=list)


@dataclass(frozen=True)
class Budget:
    """When a walk must stop reading (`time.perf_counter`), and what a rule costs to read (the
    kernel's dump and ours): a walk does not start a chain whose rules would take it past the
    deadline (the sg-chain of a 1000-port host is 2,000 rules: 3 ms)."""

    deadline: float
    read_rule_s: float

    def allows(self, done: Walk, rules: int) -> bool:
        if not done.chains_read:
            return True  # one chain at least: a walk that starts with what was left gets on
        return perf_counter() + rules * self.read_rule_s <= self.deadline


def walk(
    queue: Iterable[ChainKey],
    chains: Mapping[ChainKey, ChainLayout],
    baseline: Snapshot | None,
    read_columns: Callable[[ChainKey, ChainLayout], Columns | None],
    read: Snapshot,
    budget: Budget | None = None,
) -> Walk:
    """Read the queued chains, first come first, then the chains their moved jumps lead to, in
    the order found, into `read`; a chain nobody entered is not read (its baseline stands).
    `read_columns` returns None for a chain it could not read (a router's namespace gone: next
    time).

    Where the budget does not allow the next chain, the walk stops and returns the chains still
    queued as `left`, in order: a reader that queues them first next time reads every chain in
    turn, none left waiting for good. A chain not read keeps its baseline, so what it counted
    meanwhile is counted, whole and once, when it is read."""
    done = Walk()
    seen: set[ChainKey] = set()
    waiting = deque(queue)
    while waiting:
        key = waiting.popleft()
        chain = chains.get(key)
        if chain is None or key in seen:
            continue
        if budget is not None and not budget.allows(done, len(chain.identities)):
            waiting.appendleft(key)
            done.left = list(dict.fromkeys(k for k in waiting if k not in seen and k in chains))
            break
        seen.add(key)
        columns = read_columns(key, chain)
        if columns is None:
            continue
        done.chains_read += 1
        packets, sizes = columns
        if len(packets) != len(chain.identities):
            done.mismatched += 1  # not what was applied (yet): keep the baseline
            continue
        done.rules_read += len(packets)
        counts = read[key] = Counts(chain.identities, packets, sizes)
        waiting.extend(moved_jumps(chain, counts, baseline.get(key) if baseline else None))
    return done


class ChainsOf(Protocol):
    """A layout: what each accounted chain of a compiled state holds."""

    @property
    def chains(self) -> Mapping[ChainKey, ChainLayout]: ...


_Compiled = TypeVar("_Compiled")
_Layout = TypeVar("_Layout", bound=ChainsOf)
_CompiledIn = TypeVar("_CompiledIn", contravariant=True)
_LayoutOut = TypeVar("_LayoutOut", bound=ChainsOf, covariant=True)


class LayoutBuilding(Protocol[_CompiledIn, _LayoutOut]):
    def build(self, compiled: _CompiledIn) -> _LayoutOut: ...


@dataclass
class Readings(Generic[_Compiled, _Layout]):
    """What both streams' accountants (ports: `worker.accounting.Accountant`; routers' firewall
    rules: `worker.router_accounting.RouterAccountant`) keep between readings: where the
    numbering stands, the baseline, and the layout of the applied state with the chains an
    apply changed (read whatever their entry jumps say)."""

    host: str
    builder: LayoutBuilding[_Compiled, _Layout]
    run: float = field(default_factory=time.time)
    seq: int = 0
    baseline: Snapshot | None = None  # None: nothing sent yet, nothing to subtract
    base_id: ReadingId | None = None
    base_at: float | None = None
    must_read: set[ChainKey] = field(default_factory=set)  # chains an apply changed
    _layout_for: _Compiled | None = None
    _layout: _Layout | None = None

    def layout(self, compiled: _Compiled) -> _Layout:
        """The layout of `compiled`, built again only when the applied state changed; the
        chains that differ from the last layout's are then read whatever their jumps say."""
        if compiled is not self._layout_for or self._layout is None:
            layout = self.builder.build(compiled)
            old = self._layout.chains if self._layout is not None else {}
            self.must_read |= {key for key, chain in layout.chains.items() if old.get(key) != chain}
            self._layout_for, self._layout = compiled, layout
        return self._layout

    def to_read(self, layout: _Layout) -> set[ChainKey]:
        """Chains read whatever their entry jumps say: changed by an apply, or not in the
        baseline yet (everything, the first time)."""
        baseline = self.baseline
        if baseline is None:
            return set(layout.chains)
        return self.must_read | {key for key in layout.chains if key not in baseline}

    def became(self, reading: ReadingId, at: float, snapshot: Snapshot) -> None:
        """A document went out: its reading is the new baseline."""
        self.seq = reading[1]
        self.baseline = snapshot
        self.base_id, self.base_at = reading, at
        self.must_read = set()


# -- the baseline in Redis ----------------------------------------------------------------------
#
# One hash per stream: `_reading` -> the JSON of the reading it is (run, seq, at, ...), and per
# chain key a packed record: a version byte (1), the identities' length and the rule count (u32
# little-endian each), the identities joined by commas, then the packets and the bytes as u64
# each. Only the chains whose counts changed are written. Agents before this format wrote each
# chain as a JSON object of identity -> [packets, bytes]; such a value still loads.

READING = b"_reading"
_PACKED = b"\x01"
_RECORD = struct.Struct("<II")


@functools.lru_cache(maxsize=1 << 14)
def _ids_text(ids: tuple[str, ...]) -> bytes:
    return ",".join(ids).encode()


def encode_counts(counts: Counts) -> bytes:
    ids = _ids_text(counts.ids)
    return b"".join((
        _PACKED, _RECORD.pack(len(ids), len(counts.ids)), ids,
        array("Q", counts.packets).tobytes(), array("Q", counts.bytes).tobytes(),
    ))  # fmt: skip


def decode_counts(value: bytes) -> Counts:
    if not value.startswith(_PACKED):  # an earlier agent's JSON
        return Counts.of({i: (p, b) for i, (p, b) in json.loads(value).items()})
    ids_length, rules = _RECORD.unpack_from(value, 1)
    start = 1 + _RECORD.size
    text = value[start : start + ids_length].decode()
    values = array("Q")
    values.frombytes(value[start + ids_length :])
    ids = tuple(text.split(",")) if rules else ()
    if len(values) != 2 * rules or len(ids) != rules:
        raise ValueError("accounting baseline: a chain's record is cut short")
    return Counts(ids, tuple(values[:rules]), tuple(values[rules:]))


class BaselineStore:
    """A stream's baseline in one Redis hash (see above), writing only what changed since the
    last save (everything, when Redis lost the hash)."""

    def __init__(self, client: Any, key: str) -> None:
        self.client = client
        self.key = key
        self._saved: Snapshot = {}

    def load(self) -> tuple[dict[str, Any] | None, Snapshot]:
        """The saved reading's metadata (None: nothing saved) and its snapshot."""
        saved = self.client.hgetall(self.key)
        meta = saved.pop(READING, None)
        if not meta:
            return None, {}
        snapshot = {chain.decode(): decode_counts(value) for chain, value in saved.items()}
        self._saved = {}  # rewritten whole by the next save, in this format
        return json.loads(meta), snapshot

    def save(
        self, meta: dict[str, Any], snapshot: Snapshot, read: Iterable[ChainKey] | None = None
    ) -> None:
        """Write `snapshot` as the baseline. `read`: the only chains whose counts can differ
        from the last save (the reading's; the others keep their baseline objects), so that a
        reading of a few chains does not compare the other 6,000."""
        try:
            self._write(meta, snapshot, read)
        except Exception:
            self._saved = {}  # not known what Redis holds: the next save writes every chain
            raise
        self._saved = dict(snapshot)

    def _write(
        self, meta: dict[str, Any], snapshot: Snapshot, read: Iterable[ChainKey] | None
    ) -> None:
        saved = self._saved if self.client.exists(self.key) else {}
        keys = snapshot.keys() if read is None or not saved else read
        changed = {
            key.encode(): encode_counts(counts)
            for key in keys
            if (counts := snapshot.get(key)) is not None
            and (before := saved.get(key)) is not counts
            and before != counts
        }
        gone = saved.keys() - snapshot.keys()
        pipe = self.client.pipeline(transaction=True)
        if gone:
            pipe.hdel(self.key, *gone)
        pipe.hset(self.key, mapping={READING: json.dumps(meta).encode(), **changed})
        pipe.execute()
