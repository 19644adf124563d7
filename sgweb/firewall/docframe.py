"""The frame the two wire codecs share (`sgweb.firewall.codec` for a host's port chains,
`sgweb.firewall.fwaas.codec` for a network node's routers): dataclasses to JSON values, the
canonical text and its digest, and opening a versioned document.

The agent reports the sha256 of the very text it applied, so the text must not depend on who
encoded it: sorted keys, fixed separators, ASCII only, tuples kept in their given order. What
each document holds (nesting, sorting, omissions) stays with its codec. No Django, no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

NOTHING_OMITTED: frozenset[str] = frozenset()


def encode(obj: Any, omitted_at_default: frozenset[str] = NOTHING_OMITTED) -> Any:
    """A dataclass (nested ones too) as JSON values: a dict per dataclass, a list per tuple.
    Fields named in `omitted_at_default` are left out while they hold their default."""
    if not omitted_at_default:
        return _encode_every_field(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: encode(getattr(obj, f.name), omitted_at_default)
            for f in dataclasses.fields(obj)
            if f.name not in omitted_at_default or getattr(obj, f.name) != f.default
        }
    if isinstance(obj, tuple | list):
        return [encode(item, omitted_at_default) for item in obj]
    return obj


def _encode_every_field(obj: Any) -> Any:
    # `encode` without omissions (a network node's document, every rule of its policies): some
    # 15 % faster without the per-field default check (measured on a 300-rule policy).
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _encode_every_field(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_encode_every_field(item) for item in obj]
    return obj


def canonical_text(data: Any) -> str:
    """The one JSON text of `data`, whichever process writes it."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(text: str) -> str:
    """sha256 hex of the canonical text; what the agent reports it applied."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse(text: str, what: str, error: type[ValueError]) -> Any:
    """The JSON value of a document's text; `error` ("<what> is not JSON") when it is none."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not JSON: {exc}") from exc


def check_format(data: Any, what: str, version: int, error: type[ValueError]) -> None:
    """Refuse what is not a `what` document of this `version`: an agent rather refuses a
    document than applies a misread firewall."""
    if not isinstance(data, dict):
        raise error(f"a {what} document must be a JSON object")
    found = data.get("format")
    if found != version:
        raise error(f"{what} format {found!r} is not {version}")


def present_fields(cls: type, data: Any, error: type[ValueError]) -> Iterator[tuple[str, Any]]:
    """(name, JSON value) of each field of dataclass `cls` the object `data` holds; a field it
    does not hold keeps the model's default."""
    if not isinstance(data, dict):
        raise error(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
    for f in dataclasses.fields(cls):
        if f.name in data:
            yield f.name, data[f.name]
