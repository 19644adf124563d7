"""HostState <-> JSON, the wire format between the control plane and the host agents.

The control plane publishes one document per host and the agent decodes it, so both sides must
agree byte for byte: the digest the agent reports back is the sha256 of this text. Output is
deterministic (sorted keys, fixed separators, tuples kept in their given order) so the same state
always gives the same digest, whichever web server encoded it. No Django, no I/O.
"""

from __future__ import annotations

from typing import Any, cast

from sgweb.firewall import docframe
from sgweb.firewall.model import (
    AddressPair,
    HostState,
    LogSettings,
    Port,
    SecurityGroup,
    SecurityGroupRule,
)

# Bumped when the document's shape changes incompatibly; an agent refuses what it cannot read
# rather than applying a misread firewall.
FORMAT_VERSION = 1


class CodecError(ValueError):
    """The text is not a HostState document this version understands."""


# Fields holding nested dataclasses; every other field is a scalar or a tuple of scalars. Walking
# `dataclasses.fields` keeps the codec in step when the model gains a field.
_NESTED: dict[type, dict[str, type]] = {
    HostState: {"ports": Port, "security_groups": SecurityGroup, "log_settings": LogSettings},
    SecurityGroup: {"rules": SecurityGroupRule},
    Port: {"allowed_address_pairs": AddressPair},
}
_PAIRS = {"remote_group_members", "conntrack_zones"}  # tuples of (key, value) pairs
_SINGLE = {"log_settings"}  # one nested dataclass, not a tuple of them
# Fields left out of the document while they hold their default: a host without packet logging
# keeps the very document (and digest) it had before logging existed.
_OMITTED_AT_DEFAULT = frozenset({"log_events", "log_settings"})
_WHAT = "host state"


def _encode(obj: Any) -> Any:
    return docframe.encode(obj, _OMITTED_AT_DEFAULT)


def to_dict(state: HostState) -> dict[str, Any]:
    data: dict[str, Any] = _encode(state)
    data["format"] = FORMAT_VERSION
    return data


def dumps(state: HostState) -> str:
    """The canonical JSON text of a host's desired state."""
    return docframe.canonical_text(to_dict(state))


digest = docframe.digest  # sha256 hex of the canonical text; what the agent reports it applied


def _decode(cls: type, data: Any) -> Any:
    nested = _NESTED.get(cls, {})
    values: dict[str, Any] = {}
    for name, value in docframe.present_fields(cls, data, CodecError):
        if name in _SINGLE:
            value = _decode(nested[name], value)
        elif name in nested:
            value = tuple(_decode(nested[name], item) for item in value)
        elif name in _PAIRS:
            value = tuple(
                (key, tuple(item) if isinstance(item, list) else item) for key, item in value
            )
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def from_dict(data: dict[str, Any]) -> HostState:
    docframe.check_format(data, _WHAT, FORMAT_VERSION, CodecError)
    try:
        return cast(HostState, _decode(HostState, data))
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"malformed host state document: {exc!r}") from exc


def loads(text: str) -> HostState:
    return from_dict(docframe.parse(text, _WHAT, CodecError))
