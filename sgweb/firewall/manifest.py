"""A host's desired state split into a small manifest and content-addressed shared pieces.

Why: a group used on every host and a remote group with thousands of members are the same bytes
for every host. Published whole per host, one rule change rebuilt, encoded and stored those
bytes hosts x members times. Split, each piece is encoded once per change and stored once under
the sha256 of its text; a host's manifest names its pieces by hash, and an agent fetches only the
pieces it does not hold yet.

Pieces (kind, then what the text is; every text is canonical JSON like `codec.dumps`):

* ``ports``    the host's ports, in order (one piece per host; it changes only with its ports)
* ``sg``       one security group with its rules
* ``members``  ``[group id, [addresses]]``: one remote group's members

The manifest holds every other HostState field as `codec` writes it, ``ports`` (a hash),
``uses`` (the groups the ports use, so a publisher can work out the remote groups again without
reading the ports) and ``security_groups`` / ``remote_group_members`` as ``[group id, hash]``
pairs in the state's order.

The digest of a state (`state_digest`) is the sha256 of its manifest text. It is as strong as a
digest of the whole text: the manifest fixes every piece by its sha256, so two states have the
same digest only if they are equal (short of a sha256 collision); and it costs a publisher
nothing per host beyond the manifest, where a whole-text digest would hash every member address
once per host. The control plane (publish, reconcile) and the agent both use it. No I/O.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sgweb.firewall import codec, docframe
from sgweb.firewall.model import HostState, Port, SecurityGroup

MANIFEST_FORMAT = 2  # codec.FORMAT_VERSION is 1: a manifest is never mistaken for a whole state
PORTS = "ports"
GROUP = "sg"
MEMBERS = "members"
KINDS = (PORTS, GROUP, MEMBERS)
_BIG = ("ports", "security_groups", "remote_group_members")

Members = tuple[str, tuple[str, ...]]


_text = docframe.canonical_text  # the codecs' canonical JSON, so a piece hashes alike anywhere
_hash = docframe.digest


@dataclass(frozen=True, slots=True)
class Piece:
    kind: str
    hash: str
    text: str


def piece(kind: str, data: Any) -> Piece:
    text = _text(data)
    return Piece(kind, _hash(text), text)


def ports_piece(ports: Iterable[Port]) -> Piece:
    return piece(PORTS, [codec._encode(port) for port in ports])


def group_piece(group: SecurityGroup) -> Piece:
    return piece(GROUP, codec._encode(group))


def members_piece(group_id: str, addresses: Iterable[str]) -> Piece:
    return piece(MEMBERS, [group_id, list(addresses)])


def uses(ports: Iterable[Port]) -> list[str]:
    return sorted({group_id for port in ports for group_id in port.security_groups})


def scalars(state: HostState) -> dict[str, Any]:
    """Every HostState field but the big three, as `codec` writes them (its omissions too)."""
    data = codec.to_dict(
        dataclasses.replace(state, ports=(), security_groups=(), remote_group_members=())
    )
    for name in _BIG:
        data.pop(name, None)
    return data


@dataclass(frozen=True, slots=True)
class Manifest:
    text: str
    digest: str
    ports: Piece
    groups: tuple[tuple[str, Piece], ...]
    members: tuple[tuple[str, Piece], ...]

    @property
    def pieces(self) -> list[Piece]:
        return [self.ports, *(p for _, p in self.groups), *(p for _, p in self.members)]


def manifest_text(
    base: Mapping[str, Any],
    ports_hash: str,
    used: Iterable[str],
    groups: Iterable[tuple[str, str]],
    members: Iterable[tuple[str, str]],
) -> str:
    return _text(
        {
            "format": MANIFEST_FORMAT,
            "state": dict(base),
            "ports": ports_hash,
            "uses": sorted(used),
            "security_groups": [[gid, h] for gid, h in groups],
            "remote_group_members": [[gid, h] for gid, h in members],
        }
    )


def split(
    state: HostState,
    *,
    group_cache: Callable[[SecurityGroup], Piece] = group_piece,
    members_cache: Callable[[str, tuple[str, ...]], Piece] = members_piece,
    ports: Piece | None = None,
) -> Manifest:
    """The state's manifest and pieces; the callables let a publisher encode each shared piece
    once for many hosts (the state's own objects are the keys)."""
    ports = ports or ports_piece(state.ports)
    groups = tuple((group.id, group_cache(group)) for group in state.security_groups)
    members = tuple((gid, members_cache(gid, addrs)) for gid, addrs in state.remote_group_members)
    text = manifest_text(
        scalars(state),
        ports.hash,
        uses(state.ports),
        ((gid, p.hash) for gid, p in groups),
        ((gid, p.hash) for gid, p in members),
    )
    return Manifest(text, _hash(text), ports, groups, members)


def state_digest(state: HostState) -> str:
    """What the control plane stores and the agent reports for a state (see the module doc)."""
    return split(state).digest


def text_digest(text: str) -> str:
    return _hash(text)


def is_manifest(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT


def refs(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, hash) of every piece a manifest names, in its order."""
    found = [(PORTS, str(data["ports"]))]
    found += [(GROUP, str(h)) for _, h in data["security_groups"]]
    found += [(MEMBERS, str(h)) for _, h in data["remote_group_members"]]
    return found


def decode_piece(kind: str, text: str | bytes, expected_hash: str) -> Any:
    """The piece's objects, once its text is proven to be the one its hash names."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _hash(text) != expected_hash:
        raise codec.CodecError(f"{kind} piece {expected_hash[:12]} does not match its hash")
    try:
        data = json.loads(text)
        if kind == PORTS:
            return tuple(codec._decode(Port, item) for item in data)
        if kind == GROUP:
            return codec._decode(SecurityGroup, data)
        if kind == MEMBERS:
            gid, addresses = data
            return (str(gid), tuple(str(a) for a in addresses))
    except (KeyError, TypeError, ValueError) as exc:
        raise codec.CodecError(f"malformed {kind} piece: {exc!r}") from exc
    raise codec.CodecError(f"unknown piece kind {kind!r}")


def assemble(data: Mapping[str, Any], pieces: Mapping[tuple[str, str], Any]) -> HostState:
    """The whole state from a manifest and its decoded pieces (keyed by (kind, hash))."""
    try:
        base = codec.from_dict({**data["state"], **{name: [] for name in _BIG}})
        return dataclasses.replace(
            base,
            ports=pieces[(PORTS, str(data["ports"]))],
            security_groups=tuple(pieces[(GROUP, str(h))] for _, h in data["security_groups"]),
            remote_group_members=tuple(
                pieces[(MEMBERS, str(h))] for _, h in data["remote_group_members"]
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise codec.CodecError(f"malformed manifest: {exc!r}") from exc
