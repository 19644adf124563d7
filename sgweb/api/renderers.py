"""The API's JSON renderer: DRF's output, byte for byte, written by orjson.

A listing page of 100 security groups is about 1.2 MB of JSON; the standard library's encoder
spent a third of the request's CPU on it (33 ms of 52 ms, `python -m bench.api_served`), orjson
about a tenth of that. Our dictionaries hold only str, int, bool, None, lists and dicts (times
are already Neutron's strings), where the two encoders agree; anything else (a datetime, a
Decimal, a lazy translation in an error) goes through DRF's own encoder so it reads the same.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

_drf_default = JSONEncoder().default
# Datetimes go to DRF's encoder (its format differs from orjson's); str/int/dict subclasses
# are written as their base type, as the standard library does. A dict with keys that are not
# strings is refused (OPT_NON_STR_KEYS would cost a third more on every page) and written by DRF.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME


class RenderedList:
    """A list of our dictionaries rendered to JSON once, kept and written as is.

    A page of 100 security groups embeds 2,000 rules that rarely change: writing their JSON
    again (and copying their dictionaries for it) was most of the page's CPU. FastJSONRenderer
    writes `rendered` into the answer unchanged (an orjson.Fragment); anything else (DRF's
    encoder, Python code reading a response's data) iterates fresh copies of the values, so the
    bytes and the data are the same whichever way the answer is written. Only for values
    orjson and DRF's encoder write alike (str, int, bool, None, lists, dicts with str keys)."""

    __slots__ = ("fragment", "rendered")

    def __init__(self, values: list[Any]) -> None:
        self.rendered: bytes = orjson.dumps(values)
        self.fragment = orjson.Fragment(self.rendered)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())

    def __len__(self) -> int:
        return len(self.values())

    def values(self) -> list[Any]:
        """Fresh copies: the caller may change them."""
        return list(orjson.loads(self.rendered))


def _default(value: Any) -> Any:
    if type(value) is RenderedList:
        return value.fragment
    return _drf_default(value)


class FastJSONRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        # An indented answer (`Accept: application/json; indent=4`) is for humans: DRF's.
        if self.get_indent(accepted_media_type or "", renderer_context or {}) is not None:
            return bytes(super().render(data, accepted_media_type, renderer_context))
        try:
            out = orjson.dumps(data, default=_default, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # What orjson refuses and the standard library writes (an integer past 64 bits,
            # keys that are not strings).
            return bytes(super().render(data, accepted_media_type, renderer_context))
        # DRF escapes U+2028/U+2029 so the JSON is also valid JavaScript. (`isascii` first:
        # searching a megabyte for them costs 10 ms, asking whether it is ASCII 20 µs.)
        if not out.isascii() and (b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out):
            out = out.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return out
