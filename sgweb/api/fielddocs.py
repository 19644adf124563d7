"""Helpers for the OpenAPI field descriptions."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from rest_framework import serializers


def writable(
    fields: dict[str, serializers.Field], *, required: Iterable[str] = ()
) -> dict[str, serializers.Field]:
    """The request-body view of an object's fields: read-only ones dropped, only `required`
    ones required (PUT is a partial update)."""
    needed = set(required)
    result = {}
    for name, field in fields.items():
        if field.read_only:
            continue
        clone = copy.deepcopy(field)
        clone.required = name in needed
        result[name] = clone
    return result
