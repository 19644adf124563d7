"""Always-on accounting between the agents and the control plane (issue 12); pure.

Every agent reads all of its rule counters every interval (``SGWEB_ACCOUNTING_INTERVAL_S``,
default 10 s), with or without watchers, and sends what each origin counted since its previous
reading to the control queue as one `TASK_RECORD_ACCOUNTING` task (a `Deltas` document).

Readings are numbered ``(run, seq)``: `run` is when the agent process started (a float, so a
restarted agent's readings sort after its predecessor's), `seq` counts its readings. A document
says which reading its deltas start from (`base`) and which they end at (`reading`). The control
plane keeps the last reading it counted per host and:

* counts a document whose base is that reading (the usual case);
* counts a document whose base is newer (documents in between were lost, e.g. a Redis restart
  dropped the queue), and says how many intervals were lost;
* drops a document whose base is older (it overlaps what was counted: a redelivered task, or an
  agent that restarted from a baseline saved before its last document went out): at most one
  interval is lost that way, nothing is ever counted twice.

The agent keeps its baseline (the last counters it sent) in Redis (`baseline_key`), so an agent
that was down for an hour sends the hour's traffic once, in its first document; a counter that
went down (its rule was re-created) counts from zero again, never as negative traffic.

Entries of `origins`: ``[kind, rule_id, port_id, direction, verdict, packets, bytes]`` summed
over the host's kernel rules with that origin in this interval (both families), where kind is
the compiler's origin kind (``sg-rule``, ``anti-spoofing``, ``dhcp``, ``invalid``,
``established``, ``fallback``, ...), verdict ``accept`` | ``drop`` | ``pass`` (a rule that
neither accepts nor drops for the port: jumps, the anti-spoofing chain's RETURN). Entries of
`chains`: ``[name, packets, bytes]`` for the host-wide chains (`HOST_CHAINS`), counted at the
rules that jump into them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

TASK_RECORD_ACCOUNTING = "sgweb.accounting.record"  # agent -> control: one interval's deltas
DEFAULT_INTERVAL_S = 10.0
# How long one reading may take, reading the chains, subtracting, sending the document and
# saving the baseline (``SGWEB_ACCOUNTING_BUDGET_MS``; 0: no limit). The reader stops reading
# chains when what it has read, and what those chains will cost after, reach it, and leaves the
# rest to the next reading, which reads them first. A host with every port busy has every chain
# to read each interval, which costs the kernel alone more than this (see
# `worker.accounting_read`); its chains are then read in turns, each at least every few
# intervals, and each one's hits are counted whole and once when it is read.
DEFAULT_BUDGET_MS = 40.0

ACCEPT = "accept"
DROP = "drop"
PASS = "pass"
VERDICTS = (ACCEPT, DROP, PASS)

# Host-wide chains shown on the host page, by the name a reader knows them by.
HOST_FORWARD = "FORWARD"  # everything the host bridged or routed into our chains
HOST_INPUT = "INPUT"  # what VMs sent to the host itself
HOST_SG_CHAIN = "sg-chain"  # traffic of filtered ports
HOST_FALLBACK = "sg-fallback"  # the fallback DROP
HOST_CHAINS = (HOST_FORWARD, HOST_INPUT, HOST_SG_CHAIN, HOST_FALLBACK)

ReadingId = tuple[float, int]  # (run, seq)


def baseline_key(prefix: str, host: str) -> str:
    """Redis hash: chain key -> JSON counters of the last reading sent; ``_reading`` -> its id."""
    return f"{prefix}:host:{host}:accounting_baseline"


class OriginDelta(NamedTuple):
    """A named tuple, not a dataclass: an agent makes tens of thousands a reading (a 1000-port
    host with every rule hit: 22,000), and a tuple of strings and ints is cheap to make and
    dropped from the garbage collector's watch (frozen dataclasses: ~4x the making time, and
    every one tracked, which set off full collections over the agent's heap)."""

    kind: str
    rule_id: str | None
    port_id: str | None
    direction: str | None
    verdict: str
    packets: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Deltas:
    host: str
    reading: ReadingId
    base: ReadingId | None  # None: the agent had no baseline; nothing is counted before now
    started_at: float  # the wall-clock time of the base reading (or of `at` when none)
    at: float  # when this reading was taken
    origins: tuple[OriginDelta, ...]
    chains: tuple[tuple[str, int, int], ...]
    read_ms: float = 0.0  # what the kernel read cost the agent
    resets: int = 0  # rules whose counter went down since the base (re-created rules)
    # Chains the reading had no time for (its budget): they are read first by the next one,
    # and what they count meanwhile arrives then, whole
    chains_waiting: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **_reading_dict(self),
            # named tuples: JSON arrays as they are (22,000 lists a busy reading, not made)
            "origins": list(self.origins),
            "chains": [list(chain) for chain in self.chains],
            "chains_waiting": self.chains_waiting,
        }


class DeltasError(ValueError):
    pass


def parse_deltas(data: dict[str, Any]) -> Deltas:
    """The document from its JSON form; a malformed one is refused whole."""
    try:
        origins = tuple(
            OriginDelta(
                str(kind), _text(rule_id), _text(port_id), _text(direction), str(verdict),
                int(packets), int(size),
            )
            for kind, rule_id, port_id, direction, verdict, packets, size in data["origins"]
        )  # fmt: skip
        chains = tuple((str(name), int(p), int(b)) for name, p, b in data.get("chains", ()))
        deltas = Deltas(
            **_reading_fields(data),
            origins=origins,
            chains=chains,
            chains_waiting=int(data.get("chains_waiting", 0)),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DeltasError(f"malformed accounting document: {exc}") from None
    if deltas.chains_waiting < 0:
        raise DeltasError("malformed accounting document: chains_waiting < 0")
    for origin in deltas.origins:
        if origin.verdict not in VERDICTS or origin.packets < 0 or origin.bytes < 0:
            raise DeltasError(f"malformed origin delta {origin}")
    return deltas


def _reading_dict(document: Deltas | FirewallDeltas) -> dict[str, Any]:
    """The JSON of the fields `_reading_fields` reads back."""
    base = document.base
    return {
        "host": document.host,
        "reading": list(document.reading),
        "base": list(base) if base is not None else None,
        "started_at": document.started_at,
        "at": document.at,
        "read_ms": document.read_ms,
        "resets": document.resets,
    }


def _reading_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields both streams' documents share: which reading, from which base, when, and what
    the reading cost. Raises what a malformed field raises (the callers refuse the document)."""
    base = data.get("base")
    return {
        "host": str(data["host"]),
        "reading": (float(data["reading"][0]), int(data["reading"][1])),
        "base": (float(base[0]), int(base[1])) if base is not None else None,
        "started_at": float(data["started_at"]),
        "at": float(data["at"]),
        "read_ms": float(data.get("read_ms", 0.0)),
        "resets": int(data.get("resets", 0)),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def lost_between(last: ReadingId | None, base: ReadingId | None) -> int | None:
    """How the control plane takes a document whose deltas start at `base`, having counted up to
    `last`: None to drop it (overlap), else the number of intervals lost in between (0: none)."""
    if base is None or last is None:
        return 0
    if base == last:
        return 0
    if base < last:
        return None
    if base[0] == last[0]:
        return base[1] - last[1]
    return 1  # a new run whose baseline is newer than what we counted: at least one lost


# -- firewall rules on a network node's routers (issue 16) --------------------------------------
#
# The network node's agent reads its routers' firewall chains on the same interval and sends a
# `FirewallDeltas` document as `TASK_RECORD_FIREWALL_ACCOUNTING`. It is a stream of its own,
# numbered and based like `Deltas` (`lost_between` decides the same way) but kept apart, so a
# host that has ports and routers never mixes the two readings' numbers. Entries of `rules`:
# ``[kind, rule_id, router_id, group_id, direction, verdict, packets, bytes]``, kind one of
# FW_KINDS (a firewall rule, or the built-in origins of every policy chain and the default drop
# of the interfaces a group covers); rule_id is None for the built-in ones.

TASK_RECORD_FIREWALL_ACCOUNTING = "sgweb.accounting.record_firewall"
FW_RULE = "fw-rule"
FW_INVALID = "fw-invalid"
FW_ESTABLISHED = "fw-established"
FW_DEFAULT_DROP = "fw-default-drop"
FW_KINDS = (FW_RULE, FW_INVALID, FW_ESTABLISHED, FW_DEFAULT_DROP)


def router_baseline_key(prefix: str, host: str) -> str:
    """Redis hash of the firewall stream's baseline, laid out as `baseline_key`'s."""
    return f"{prefix}:host:{host}:routers:accounting_baseline"


class FirewallDelta(NamedTuple):
    kind: str
    rule_id: str | None
    router_id: str
    group_id: str
    direction: str | None
    verdict: str
    packets: int
    bytes: int


@dataclass(frozen=True, slots=True)
class FirewallDeltas:
    host: str
    reading: ReadingId
    base: ReadingId | None
    started_at: float
    at: float
    rules: tuple[FirewallDelta, ...]
    read_ms: float = 0.0
    resets: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**_reading_dict(self), "rules": [list(rule) for rule in self.rules]}


def parse_firewall_deltas(data: dict[str, Any]) -> FirewallDeltas:
    """The firewall document from its JSON form; a malformed one is refused whole."""
    try:
        rules = tuple(
            FirewallDelta(
                str(kind), _text(rule_id), str(router_id), str(group_id), _text(direction),
                str(verdict), int(packets), int(size),
            )
            for kind, rule_id, router_id, group_id, direction, verdict, packets, size
            in data["rules"]
        )  # fmt: skip
        deltas = FirewallDeltas(**_reading_fields(data), rules=rules)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DeltasError(f"malformed firewall accounting document: {exc}") from None
    for rule in deltas.rules:
        if (
            rule.kind not in FW_KINDS
            or rule.verdict not in VERDICTS
            or rule.packets < 0
            or rule.bytes < 0
        ):
            raise DeltasError(f"malformed firewall delta {rule}")
    return deltas
