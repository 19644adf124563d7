"""Helpers for the OpenAPI field descriptions."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from rest_framework import serializers

# Serializer fields by name (quoted: DRF's Field is generic only in its stubs).
FieldMap = dict[str, "serializers.Field[Any, Any, Any, Any]"]


def writable(fields: FieldMap, *, required: Iterable[str] = ()) -> FieldMap:
    """The request-body view of an object's fields: read-only ones dropped, only `required`
    ones required (PUT is a partial update)."""
    needed = set(required)
    result: FieldMap = {}
    for name, field in fields.items():
        if field.read_only:
            continue
        clone = copy.deepcopy(field)
        clone.required = name in needed
        result[name] = clone
    return result
