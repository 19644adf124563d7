"""A host's desired state split into a small manifest and content-addressed shared pieces.

Why: a group used on every host and a remote group with thousands of members are the same bytes
for every host. Published whole per host, one rule change rebuilt, encoded and stored those
bytes hosts x members times. Split, each piece is encoded once per change and stored once under
the id of its text; a host's manifest names its pieces by id, and an agent fetches only the
pieces it does not hold yet.

Pieces (kind, then what the text is; every text is canonical JSON like `codec.dumps`):

* ``ports``     the host's ports, in order (one piece per host; it changes only with its ports)
* ``sg``        one security group with its rules
* ``members``   ``[group id, [addresses]]``: one remote group's members
* ``settings``  every other HostState field but ``host``, as `codec` writes them (the control
                plane's settings: one piece for every host of a deployment)

A piece's id (`piece_id`) is the first 24 bytes of the sha256 of its text, in unpadded
base64url: 32 characters. The manifest (format 3) is ``host``, ``settings`` and ``ports``
(ids), ``uses`` (the groups the ports use, so a publisher can work out the remote groups again
without reading the ports), and ``groups`` / ``members``: the ids of the state's
``security_groups`` and ``remote_group_members`` in its order (each piece names its group).
What a manifest costs a thousand hosts matters: one change to a group on every host writes one
per host (issue 15), about 260 bytes for a host in one group where format 2 (64-character
hex hashes, the settings inline, group ids beside the hashes) took 540. Format 2 is still
read (an applied state or a stored document from before); publishers write format 3.

The digest of a state (`state_digest`) is the sha256 (hex) of its manifest text. It is as
strong as a digest of the whole text up to the pieces' ids: two states have the same digest
only if they are equal or two piece texts share 192 bits of sha256, which takes some 2^96
hashes to find on purpose (no full sha256 collision is known at all). And it costs a
publisher nothing per host beyond the manifest, where a whole-text digest would hash every
member address once per host. The control plane (publish, reconcile) and the agent both use
it. No I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sgweb.firewall import codec, docframe
from sgweb.firewall.model import HostState, Port, SecurityGroup

MANIFEST_FORMAT = 3  # codec.FORMAT_VERSION is 1: a manifest is never mistaken for a whole state
OLD_MANIFEST_FORMAT = 2  # still read: refs are sha256 hex, settings inline (see the module doc)
PORTS = "ports"
GROUP = "sg"
MEMBERS = "members"
SETTINGS = "settings"
KINDS = (PORTS, GROUP, MEMBERS, SETTINGS)
ID_BYTES = 24  # 192 bits of sha256: 32 base64url characters
_BIG = ("ports", "security_groups", "remote_group_members")

Members = tuple[str, tuple[str, ...]]


_text = docframe.canonical_text  # the codecs' canonical JSON, so a piece hashes alike anywhere
_hash = docframe.digest


def piece_id(text: str) -> str:
    """A piece's id: 192 bits of the sha256 of its text, unpadded base64url (see the doc)."""
    raw = hashlib.sha256(text.encode("utf-8")).digest()[:ID_BYTES]
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _matches(text: str, ref: str) -> bool:
    """Whether `text` is the piece `ref` names (a format 3 id, or a format 2 sha256 hex)."""
    return (_hash(text) if len(ref) == 64 else piece_id(text)) == ref


@dataclass(frozen=True, slots=True)
class Piece:
    kind: str
    hash: str  # its id (`piece_id`)
    text: str


def piece(kind: str, data: Any) -> Piece:
    text = _text(data)
    return Piece(kind, piece_id(text), text)


def ports_piece(ports: Iterable[Port]) -> Piece:
    return piece(PORTS, [codec._encode(port) for port in ports])


def group_piece(group: SecurityGroup) -> Piece:
    return piece(GROUP, codec._encode(group))


def members_piece(group_id: str, addresses: Iterable[str]) -> Piece:
    return piece(MEMBERS, [group_id, list(addresses)])


def settings_text(state: HostState) -> str:
    """The text of the state's settings piece (its scalars but ``host``)."""
    settings = scalars(state)
    for name in ("host", "format"):
        settings.pop(name, None)
    return _text(settings)


def settings_piece(state: HostState) -> Piece:
    text = settings_text(state)
    return Piece(SETTINGS, piece_id(text), text)


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
    settings: Piece
    groups: tuple[tuple[str, Piece], ...]
    members: tuple[tuple[str, Piece], ...]

    @property
    def pieces(self) -> list[Piece]:
        return [
            self.ports,
            self.settings,
            *(p for _, p in self.groups),
            *(p for _, p in self.members),
        ]


def manifest_text(
    host: str | None,
    settings: str,
    ports: str,
    used: Iterable[str],
    groups: Iterable[str],
    members: Iterable[str],
) -> str:
    """The manifest's text from its pieces' ids (see the module doc)."""
    return _text(
        {
            "format": MANIFEST_FORMAT,
            "host": host,
            "settings": settings,
            "ports": ports,
            "uses": sorted(used),
            "groups": list(groups),
            "members": list(members),
        }
    )


def split(
    state: HostState,
    *,
    group_cache: Callable[[SecurityGroup], Piece] = group_piece,
    members_cache: Callable[[str, tuple[str, ...]], Piece] = members_piece,
    settings_cache: Callable[[HostState], Piece] = settings_piece,
    ports: Piece | None = None,
) -> Manifest:
    """The state's manifest and pieces; the callables let a publisher encode each shared piece
    once for many hosts (the state's own objects are the keys)."""
    ports = ports or ports_piece(state.ports)
    settings = settings_cache(state)
    groups = tuple((group.id, group_cache(group)) for group in state.security_groups)
    members = tuple((gid, members_cache(gid, addrs)) for gid, addrs in state.remote_group_members)
    text = manifest_text(
        state.host,
        settings.hash,
        ports.hash,
        uses(state.ports),
        (p.hash for _, p in groups),
        (p.hash for _, p in members),
    )
    return Manifest(text, _hash(text), ports, settings, groups, members)


def state_digest(state: HostState) -> str:
    """What the control plane stores and the agent reports for a state (see the module doc)."""
    return split(state).digest


def text_digest(text: str) -> str:
    return _hash(text)


def canonical_text(data: Mapping[str, Any]) -> str:
    """A parsed manifest's text again (what its digest was taken of)."""
    return _text(data)


def is_manifest(data: Any, *, current: bool = False) -> bool:
    """A manifest of either format; `current`: of the format publishers write now."""
    formats = (MANIFEST_FORMAT,) if current else (MANIFEST_FORMAT, OLD_MANIFEST_FORMAT)
    return isinstance(data, dict) and data.get("format") in formats


def refs(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, id) of every piece a manifest names, in its order."""
    if data.get("format") == OLD_MANIFEST_FORMAT:
        found = [(PORTS, str(data["ports"]))]
        found += [(GROUP, str(h)) for _, h in data["security_groups"]]
        return found + [(MEMBERS, str(h)) for _, h in data["remote_group_members"]]
    found = [(PORTS, str(data["ports"])), (SETTINGS, str(data["settings"]))]
    found += [(GROUP, str(h)) for h in data["groups"]]
    return found + [(MEMBERS, str(h)) for h in data["members"]]


def decode_piece(kind: str, text: str | bytes, expected_hash: str) -> Any:
    """The piece's objects, once its text is proven to be the one its id names."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not _matches(text, expected_hash):
        raise codec.CodecError(f"{kind} piece {expected_hash[:12]} does not match its id")
    try:
        data = json.loads(text)
        if kind == PORTS:
            return tuple(codec._decode(Port, item) for item in data)
        if kind == GROUP:
            return codec._decode(SecurityGroup, data)
        if kind == MEMBERS:
            gid, addresses = data
            return (str(gid), tuple(str(a) for a in addresses))
        if kind == SETTINGS:
            if not isinstance(data, dict):
                raise TypeError("settings are not an object")
            return data
    except (KeyError, TypeError, ValueError) as exc:
        raise codec.CodecError(f"malformed {kind} piece: {exc!r}") from exc
    raise codec.CodecError(f"unknown piece kind {kind!r}")


def _base(data: Mapping[str, Any], pieces: Mapping[tuple[str, str], Any]) -> HostState:
    """The state's scalars: inline (format 2) or its settings piece and host (format 3)."""
    empty: dict[str, list[Any]] = {name: [] for name in _BIG}
    if data.get("format") == OLD_MANIFEST_FORMAT:
        return codec.from_dict({**data["state"], **empty})
    settings = pieces[(SETTINGS, str(data["settings"]))]
    return codec.from_dict(
        {**settings, "format": codec.FORMAT_VERSION, "host": data["host"], **empty}
    )


def assemble(data: Mapping[str, Any], pieces: Mapping[tuple[str, str], Any]) -> HostState:
    """The whole state from a manifest and its decoded pieces (keyed by (kind, id))."""
    try:
        refs_in_order = refs(data)
        base = _base(data, pieces)
        return dataclasses.replace(
            base,
            ports=pieces[refs_in_order[0]],
            security_groups=tuple(pieces[ref] for ref in refs_in_order if ref[0] == GROUP),
            remote_group_members=tuple(pieces[ref] for ref in refs_in_order if ref[0] == MEMBERS),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise codec.CodecError(f"malformed manifest: {exc!r}") from exc
