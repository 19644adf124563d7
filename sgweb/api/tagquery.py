"""Reading tags for lists: the four tag filters and the tags of a page of resources."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import Field, Model, Q, QuerySet

from sgweb.api.query import Filter, driver_cursor
from sgweb.tenancy.models import Tag
from sgweb.tenancy.representation import uuid_text


def _split(values: list[str]) -> list[str]:
    return [tag for value in values for tag in value.split(",") if tag]


def tag_filters(model: type[Model]) -> dict[str, Filter]:
    """The four tag filters of one kind of resource."""

    def carrying(tags: Iterable[str]) -> Q:
        # The content type is looked up when a list is asked for (Django caches it), never
        # when the URLconf is loaded.
        content_type = ContentType.objects.get_for_model(model)
        found = Tag.objects.filter(content_type=content_type, tag__in=list(tags))
        return Q(pk__in=found.values("object_id"))

    def all_of(values: list[str]) -> Q:
        condition = Q()
        for tag in _split(values):
            condition &= carrying([tag])
        return condition

    def any_of(values: list[str]) -> Q:
        return carrying(_split(values))

    def negated(build: Callable[[list[str]], Q]) -> Callable[[list[str]], Q]:
        return lambda values: ~build(values) if _split(values) else Q()

    return {
        "tags": Filter("", build=all_of),
        "tags-any": Filter("", build=any_of),
        "not-tags": Filter("", build=negated(all_of)),
        "not-tags-any": Filter("", build=negated(any_of)),
    }


def fill_tags(
    model: type[Model], dicts: list[dict[str, Any]], among: QuerySet[Any] | None = None
) -> None:
    """Put each resource's tags into its dictionary: one query for a whole page (see
    `tags_by_object`)."""
    if not dicts:
        return
    found = tags_by_object(model, among if among is not None else [data["id"] for data in dicts])
    for data in dicts:
        data["tags"] = found.get(data["id"], [])


def tags_by_object(model: type[Model], among: QuerySet[Any] | list[str]) -> dict[str, list[str]]:
    """The sorted tags of the objects `among` that have some, by their id's text: one query.

    `among` is the ids' text (a page), or the ids of a superset of the page as a query
    (`.values("id")`): the rules embedded in a page of groups are thousands, and binding
    thousands of parameters cost more than the listing's other queries together."""
    content_type = ContentType.objects.get_for_model(model)
    rows: Iterable[tuple[Any, str]]
    if isinstance(among, QuerySet):
        rows = Tag.objects.filter(content_type=content_type, object_id__in=among).values_list(
            "object_id", "tag"
        )
    else:
        rows = _tag_rows(content_type.pk, among)
    by_object: dict[str, list[str]] = defaultdict(list)
    for object_id, tag in rows:
        by_object[uuid_text(object_id)].append(tag)
    return {object_id: sorted(tags) for object_id, tags in by_object.items()}


def tags_of_children(
    model: type[Model], parent: str, parent_ids: list[str]
) -> dict[str, list[str]]:
    """`tags_by_object` for the objects of `model` whose `parent` column (a foreign key) is
    among `parent_ids` (their text): the rules of a page of groups, in one query joined
    through the children's table, without a parameter per child."""
    content_type = ContentType.objects.get_for_model(model)
    if not parent_ids:
        return {}
    quote = connection.ops.quote_name
    tags = quote(Tag._meta.db_table)
    children = quote(model._meta.db_table)
    field = model._meta.get_field(parent)
    if not isinstance(field, Field) or not field.column:
        raise ValueError(f"{model.__name__}.{parent} is not a column")
    column = quote(field.column)
    by_object: dict[str, list[str]] = defaultdict(list)
    for object_id, tag in _driver_fetch(
        f"SELECT t.object_id, t.tag FROM {tags} t JOIN {children} c ON c.id = t.object_id "
        f"WHERE t.content_type_id = %s AND c.{column} IN ({{marks}})",
        content_type.pk,
        parent_ids,
    ):
        by_object[uuid_text(object_id)].append(tag)
    return {object_id: sorted(tags) for object_id, tags in by_object.items()}


def _tag_rows(content_type_id: int, ids: list[str]) -> list[tuple[Any, str]]:
    """(object id, tag) of the objects whose ids' text is given, read by the driver with the
    ids bound as the database keeps them: every list page asks, and building the same query
    through the ORM (a UUID made and prepared per id) cost more than running it."""
    table = connection.ops.quote_name(Tag._meta.db_table)
    return _driver_fetch(
        f"SELECT object_id, tag FROM {table} "
        "WHERE content_type_id = %s AND object_id IN ({marks})",
        content_type_id,
        ids,
    )


def _driver_fetch(sql: str, content_type_id: int, ids: list[str]) -> list[tuple[Any, str]]:
    """Runs `sql` with `{marks}` standing for one parameter per id, the ids bound as the
    database keeps them (uuid on PostgreSQL, 32 hex digits on SQLite)."""
    if not ids:
        return []
    # PostgreSQL casts the text to uuid itself (psycopg binds a str as 'unknown').
    values = (
        list(ids)
        if connection.features.has_native_uuid_field
        else [text.replace("-", "") for text in ids]
    )
    with driver_cursor(connection) as cursor:
        cursor.execute(
            sql.format(marks=", ".join(["%s"] * len(values))), [content_type_id, *values]
        )
        return list(cursor.fetchall())
