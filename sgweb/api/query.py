"""Neutron's list query language: filters by any field, `fields=`, sorting and pagination.

`GET /v2.0/ports?network_id=A&network_id=B&fields=id&fields=name&limit=50&marker=X
&sort_key=name&sort_dir=asc`: repeated filter keys mean OR, different keys AND.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_datetime
from psycopg.types.string import TextLoader

from sgweb.tenancy.errors import Invalid

RESERVED_PARAMS = frozenset({"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"})
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}

M = TypeVar("M", bound=Model)


class NoMatch(Exception):
    """A filter value that can match nothing (a malformed id): the answer is an empty list."""


def as_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NoMatch from None


def as_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise Invalid(f"Invalid input for operation: '{value}' is not a valid boolean value.")


def as_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise NoMatch from None


def as_time(value: str) -> datetime:
    """An ISO 8601 time (Neutron's changed_since); one without a zone is UTC."""
    parsed = parse_datetime(value)
    if parsed is None:
        raise Invalid(
            f"Invalid input for operation: '{value}' is not a valid time; give it as ISO 8601 "
            "(2024-01-31T12:00:00Z)."
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def nothing(values: list[str]) -> Q:
    """A filter on a list attribute that is always empty here (e.g. a subnet's
    service_types): no row has the value asked for."""
    return Q(pk__in=[])


def as_text(value: str) -> str:
    return value


def as_nullable_text(value: str) -> str | None:
    return value or None


@dataclass(frozen=True)
class Filter:
    """How one Neutron field filters: its ORM lookup and how to parse a query value."""

    lookup: str
    parse: Callable[[str], Any] = as_text
    # A custom Q builder for fields that are not one column (e.g. fixed_ips=ip_address=...).
    build: Callable[[list[str]], Q] | None = None


def constant(value: object, parse: Callable[[str], Any] = as_text) -> Filter:
    """A filter on an attribute every row has with the same value (e.g. a network's mtu):
    everything matches the value, nothing matches another."""

    def build(values: list[str]) -> Q:
        for raw in values:
            try:
                if parse(raw) == value:
                    return Q()
            except NoMatch:
                continue
        return Q(pk__in=[])

    return Filter("", build=build)


@dataclass
class ListQuery:
    filters: dict[str, list[str]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    limit: int | None = None
    marker: str | None = None
    sort_keys: list[str] = field(default_factory=list)
    sort_dirs: list[str] = field(default_factory=list)
    page_reverse: bool = False


def parse_list_query(params: Any, *, default_limit: int, max_limit: int) -> ListQuery:
    query = ListQuery()
    for key in params:
        values = params.getlist(key)
        if key == "fields":
            for value in values:
                query.fields.extend(part for part in value.split(",") if part)
        elif key not in RESERVED_PARAMS:
            query.filters[key] = values
    limit_text = params.get("limit")
    if limit_text not in (None, ""):
        try:
            limit = int(limit_text)
        except ValueError:
            raise Invalid(
                f"Invalid input for operation: limit '{limit_text}' is not an integer."
            ) from None
        if limit < 0:
            raise Invalid("Invalid input for operation: limit must not be negative.")
        # Neutron: limit=0 means no limit; we still bound a page.
        query.limit = min(limit, max_limit) if limit else max_limit
    else:
        query.limit = default_limit
    query.marker = params.get("marker") or None
    query.sort_keys = params.getlist("sort_key")
    query.sort_dirs = params.getlist("sort_dir")
    query.page_reverse = params.get("page_reverse", "").lower() in _TRUE
    if query.sort_dirs and len(query.sort_dirs) != len(query.sort_keys):
        raise Invalid(
            "Invalid input for operation: The number of sort_keys and sort_dirs must be same"
        )
    for direction in query.sort_dirs:
        if direction not in ("asc", "desc"):
            raise Invalid(
                f"Invalid input for operation: {direction} is an invalid value for sort_dir, "
                "valid value is 'asc' and 'desc'"
            )
    return query


def refuse_unknown_filters(filters: dict[str, list[str]], known: Iterable[str]) -> None:
    """Unknown filter names are refused, as Neutron does with its filter-validation
    extension (which we advertise): a misspelt filter must not silently list everything."""
    names = set(known)
    unknown = [name for name in filters if name not in names]
    if unknown:
        raise Invalid(
            f"{unknown} is invalid attribute for filtering", neutron_type="HTTPBadRequest"
        )


def filter_rows(
    rows: list[dict[str, Any]], filters: dict[str, list[str]], known: Iterable[str]
) -> list[dict[str, Any]]:
    """`apply_filters` for a list that is no table (extensions): a row is kept when each
    filter names its value (repeated keys OR, different keys AND)."""
    refuse_unknown_filters(filters, known)
    return [
        row for row in rows if all(str(row.get(name)) in values for name, values in filters.items())
    ]


def apply_filters(
    queryset: QuerySet[M], filters: dict[str, list[str]], known: dict[str, Filter]
) -> QuerySet[M]:
    """Filter a list by the query's filters (`refuse_unknown_filters` first)."""
    refuse_unknown_filters(filters, known)
    for name, raw_values in filters.items():
        spec = known[name]
        if spec.build is not None:
            queryset = queryset.filter(spec.build(raw_values))
            continue
        values = []
        for raw in raw_values:
            try:
                values.append(spec.parse(raw))
            except NoMatch:
                continue
        if not values:
            return queryset.none()
        if len(values) == 1:
            value = values[0]
            lookup = f"{spec.lookup}__isnull" if value is None else spec.lookup
            queryset = queryset.filter(**{lookup: True if value is None else value})
        else:
            condition = Q()
            for value in values:
                if value is None:
                    condition |= Q(**{f"{spec.lookup}__isnull": True})
                else:
                    condition |= Q(**{spec.lookup: value})
            queryset = queryset.filter(condition)
    return queryset


def _after_marker(ordering: list[tuple[str, bool]], marker_values: dict[str, Any]) -> Q:
    """Rows strictly after the marker in this ordering (keyset pagination)."""
    condition = Q()
    equal_so_far = Q()
    for column, descending in ordering:
        value = marker_values[column]
        if value is None:
            # NULLs: keep it simple and exact for the common non-null keys.
            step = Q(**{f"{column}__isnull": False}) if descending else Q(pk__in=[])
        else:
            step = Q(**{f"{column}__lt" if descending else f"{column}__gt": value})
        condition |= equal_so_far & step
        equal_so_far &= (
            Q(**{column: value}) if value is not None else Q(**{f"{column}__isnull": True})
        )
    return condition


def driver_rows(queryset: QuerySet[Any]) -> list[dict[str, Any]]:
    """The rows of a `.values(...)` queryset as the database driver returns them, without
    Django's converter calls per value (a page of 100 ports made 800 uuid.UUID objects and
    parsed 200 times: two thirds of reading it). UUIDs come as 32 hex digits on SQLite and
    as uuid.UUID on PostgreSQL (`sgweb.tenancy.representation.uuid_text` reads both);
    booleans, numbers, text and times as the converters would give them (the SQLite backend
    registers its own for boolean and time columns; PostgreSQL's are the driver's, in UTC),
    except an annotation's boolean, which SQLite gives as 0 or 1."""
    query = queryset.query
    # Django selects the columns in this order (SQLCompiler.get_select).
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    if not query.values_select:
        raise ValueError("driver_rows reads .values(*columns) querysets only")
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:
        return []
    with driver_cursor(connections[queryset.db]) as cursor:
        cursor.execute(sql, params)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@contextmanager
def driver_cursor(connection: BaseDatabaseWrapper) -> Iterator[Any]:
    """A cursor for rows read by the driver. On PostgreSQL it reads uuid and timestamptz
    columns as the server's text (C loaders): Django's timestamptz loader is psycopg's
    pure-Python one, and it and uuid.UUID were a third of a ports page's CPU. The text is
    what `uuid_text`, `uuid_hex` and `neutron_time` read (the session's time zone is UTC,
    Django sets it)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            adapters = cursor.cursor.adapters
            adapters.register_loader("uuid", TextLoader)
            adapters.register_loader("timestamptz", TextLoader)
        yield cursor


def paginate(
    queryset: QuerySet[M],
    query: ListQuery,
    sortable: dict[str, str],
    fetch: Callable[[QuerySet[M]], list[Any]] = list,
) -> tuple[list[Any], bool, bool]:
    """The page of objects, whether there is a next page and whether there is a previous one
    (`fetch` reads the page's queryset)."""
    ordering: list[tuple[str, bool]] = []
    for index, key in enumerate(query.sort_keys):
        column = sortable.get(key)
        if column is None:
            raise Invalid(
                f"Invalid input for operation: {key} is an invalid attribute for sort_key."
            )
        descending = (query.sort_dirs[index] if query.sort_dirs else "asc") == "desc"
        ordering.append((column, descending))
    if not any(column == "id" for column, _ in ordering):
        ordering.append(("id", bool(ordering and ordering[-1][1])))
    if query.page_reverse:
        ordering = [(column, not descending) for column, descending in ordering]
    has_previous = False
    if query.marker:
        try:
            marker_id = uuid.UUID(query.marker)
        except ValueError:
            raise Invalid(
                f"Invalid input for operation: marker {query.marker} is not an id."
            ) from None
        marker_values = (
            queryset.filter(pk=marker_id).values(*[column for column, _ in ordering]).first()
        )
        if marker_values is None:
            raise Invalid(f"Invalid input for operation: marker {query.marker} not found.")
        queryset = queryset.filter(_after_marker(ordering, marker_values))
        has_previous = True
    queryset = queryset.order_by(*[("-" if desc else "") + column for column, desc in ordering])
    limit = query.limit
    rows = fetch(queryset[: limit + 1]) if limit else fetch(queryset)
    has_more = bool(limit and len(rows) > limit)
    rows = rows[:limit] if limit else rows
    if query.page_reverse:
        rows.reverse()
        return rows, has_previous, has_more
    return rows, has_more, has_previous


def select_fields(data: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return data
    return {key: data[key] for key in fields if key in data}
