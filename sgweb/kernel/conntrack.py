"""Cutting connection-tracking entries in bulk over netlink (pyroute2), not one process per rule.

Removing a 1,000-rule group from a port used to run `conntrack -D` twice per rule and address
(about 4,000 processes for two ports, 30 s). Here a whole batch of cuts costs, per address a
cut names, two filtered dumps on one ctnetlink socket (original source = the address, original
destination = the address; the kernel filters, since 5.8), a match in Python against every cut
of that address (zone, protocol, destination port), and one delete message per matching entry:
no process at all, and the cost grows with the connections that exist, not with the rules.

pyroute2 is used because it is the maintained netlink library (ctnetlink messages, filters,
sockets opened inside a named namespace); the agent calls this from a thread of its own, after
the apply and outside its lock (see `worker.conntrack`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

log = logging.getLogger(__name__)

# Protocol names the security-group model uses -> IP protocol numbers (conntrack's key).
PROTOCOL_NUMBERS = {
    "icmp": 1,
    "tcp": 6,
    "udp": 17,
    "dccp": 33,
    "gre": 47,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
}
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


class CutLike(Protocol):
    """What to cut: entries from or to these addresses, narrowed by zone, protocol, port."""

    @property
    def addresses(self) -> tuple[str, ...]: ...

    @property
    def zone(self) -> int | None: ...

    @property
    def protocol(self) -> str | None: ...

    @property
    def port(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Narrowing:
    """One cut's narrowing of an address's entries (None: any)."""

    zone: int | None
    protocol: int | None
    port: int | None

    def matches(self, zone: int, protocol: int | None, port: int | None) -> bool:
        if self.zone is not None and zone != self.zone:
            return False
        if self.protocol is not None and protocol != self.protocol:
            return False
        # Ports are decoded for TCP and UDP; for other ported protocols the whole protocol is
        # cut (more than the minimum, which is safe: see worker.conntrack).
        return self.port is None or port is None or port == self.port


@dataclass(frozen=True, slots=True)
class CutResult:
    deleted: int
    dumps: int
    seen: int
    duration_s: float
    errors: tuple[str, ...] = ()


def protocol_number(name: str | None) -> int | None:
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    return PROTOCOL_NUMBERS.get(name.lower())


def narrowings_by_address(cuts: Iterable[CutLike]) -> dict[str, set[Narrowing]]:
    """address -> every way a cut narrows it; a cut of a protocol we cannot number cuts all."""
    found: dict[str, set[Narrowing]] = defaultdict(set)
    for cut in cuts:
        number = protocol_number(cut.protocol)
        narrowing = Narrowing(
            cut.zone,
            number,
            cut.port if number is not None else None,
        )
        for address in cut.addresses:
            found[_canonical(address)].add(narrowing)
    return dict(found)


def _family_of(address: str) -> int:
    return 6 if ":" in address else 4


class ConntrackCutter:
    """Deletes the entries a batch of cuts names, in one namespace, on one socket per family."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._sockets: dict[int, Any] = {}

    def _socket(self, family: int) -> Any:
        if family not in self._sockets:
            kwargs: dict[str, Any] = {"nfgen_family": _FAMILIES[family]}
            if self.netns is not None:
                kwargs["netns"] = self.netns
            self._sockets[family] = Conntrack(**kwargs)
        return self._sockets[family]

    def close(self) -> None:
        for sock in self._sockets.values():
            try:
                sock.close()
            except Exception as exc:  # closing a socket of a namespace that is gone
                log.debug("closing a conntrack socket: %s", exc)
        self._sockets.clear()

    def cut(self, cuts: Sequence[CutLike]) -> CutResult:
        started = time.perf_counter()
        run = _CutRun()
        by_family: dict[int, dict[str, set[Narrowing]]] = defaultdict(dict)
        for address, narrowings in narrowings_by_address(cuts).items():
            by_family[_family_of(address)][address] = narrowings
        for family, wanted in sorted(by_family.items()):
            try:
                sock = self._socket(family)
            except (OSError, NetlinkError) as exc:
                run.errors.append(f"conntrack socket (IPv{family}): {exc}")
                continue
            try:
                for entries in self._dumps(sock, family, wanted, run):
                    for entry in entries:
                        run.consider(sock, entry, wanted)
            except (OSError, NetlinkError) as exc:
                run.errors.append(f"conntrack dump (IPv{family}): {exc}")
                self._sockets.pop(family, None)
        return CutResult(
            run.deleted, run.dumps, run.seen, time.perf_counter() - started, tuple(run.errors)
        )

    @staticmethod
    def _dumps(
        sock: Any, family: int, wanted: dict[str, set[Narrowing]], run: _CutRun
    ) -> Iterable[list[Any]]:
        """IPv4: the kernel filters by address (two dumps per address: as source, as
        destination). IPv6: pyroute2's address filter finds nothing for IPv6 (0.9.7), so one
        dump per zone the cuts name, filtered here."""
        if family == 4:
            for address in sorted(wanted):
                for side in ("saddr", "daddr"):
                    run.dumps += 1
                    pattern = NFCTAttrTuple(family=_FAMILIES[family], **{side: address})
                    yield list(sock.dump_entries(tuple_orig=pattern))
            return
        zones = {n.zone for narrowings in wanted.values() for n in narrowings}
        for zone in [None] if None in zones else sorted(z for z in zones if z is not None):
            run.dumps += 1
            yield list(sock.dump_entries(zone=zone))

    @staticmethod
    def _delete(sock: Any, entry: Any, errors: list[str]) -> int:
        try:
            sock.entry("del", tuple_orig=entry.tuple_orig, zone=entry.zone)
            return 1
        except NetlinkError as exc:
            if exc.code == 2:  # ENOENT: it ended (or was cut) meanwhile
                return 0
            errors.append(f"conntrack delete {entry.tuple_orig}: {exc}")
            return 0


class _CutRun:
    """The counts and the entries already handled of one `cut` call."""

    def __init__(self) -> None:
        self.deleted = self.dumps = self.seen = 0
        self.errors: list[str] = []
        self.done: set[tuple[Any, ...]] = set()

    def consider(self, sock: Any, entry: Any, wanted: dict[str, set[Narrowing]]) -> None:
        self.seen += 1
        key = _entry_key(entry)
        if key in self.done:
            return
        narrowings = wanted.get(_canonical(entry.tuple_orig.saddr), set()) | wanted.get(
            _canonical(entry.tuple_orig.daddr), set()
        )
        if narrowings and _wanted(entry, narrowings):
            self.done.add(key)
            self.deleted += ConntrackCutter._delete(sock, entry, self.errors)


def _canonical(address: str | None) -> str:
    try:
        return ipaddress.ip_address(address or "").compressed
    except ValueError:
        return address or ""


def _entry_key(entry: Any) -> tuple[Any, ...]:
    t = entry.tuple_orig
    return (t.family, t.saddr, t.daddr, t.proto, t.sport, t.dport, t.icmp_id, entry.zone)


def _wanted(entry: Any, narrowings: set[Narrowing]) -> bool:
    zone = entry.zone or 0
    proto = entry.tuple_orig.proto
    port = entry.tuple_orig.dport
    return any(n.matches(zone, proto, port) for n in narrowings)
