"""The generic HTTP side of every Neutron resource: envelopes, status codes, pagination links."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb import dispatch
from sgweb.api.idempotency import idempotent
from sgweb.api.query import apply_filters, paginate, parse_list_query, select_fields
from sgweb.api.resource import Resource
from sgweb.api.tags import store_tags, tag_body
from sgweb.tenancy.errors import Invalid, PreconditionFailed
from sgweb.tenancy.representation import uuid_text


def _body(request: Request, key: str) -> dict[str, Any]:
    data = request.data
    if not isinstance(data, dict) or not data:
        raise Invalid("Resource body required")
    if key not in data or not isinstance(data[key], dict):
        raise Invalid(f"Unable to find '{key}' in request body")
    return cast(dict[str, Any], data[key])


def _base_url(request: Request, resource: Resource[Any]) -> str:
    return request.build_absolute_uri(request.path)


def _links(
    request: Request, resource: Resource[Any], rows: list[Any], has_next: bool, has_previous: bool
) -> list[dict[str, str]]:
    links = []
    params = [
        (key, value)
        for key in request.query_params
        if key not in ("marker", "page_reverse")
        for value in request.query_params.getlist(key)
    ]
    if "limit" not in request.query_params:
        params.append(("limit", str(settings.API_DEFAULT_PAGE_SIZE)))
    base = _base_url(request, resource)
    first, last = (_row_id(rows[0]), _row_id(rows[-1])) if rows else ("", "")
    if rows and has_next:
        links.append({"rel": "next", "href": f"{base}?{urlencode([*params, ('marker', last)])}"})
    if rows and has_previous:
        previous = [*params, ("marker", first), ("page_reverse", "True")]
        links.append({"rel": "previous", "href": f"{base}?{urlencode(previous)}"})
    return links


def _row_id(row: Any) -> str:
    """The id of a page's model instance or `.values()` row (read by Django or the driver)."""
    return uuid_text(row["id"] if isinstance(row, dict) else row.pk)


class CollectionView(APIView):
    resource: Resource[Any] = None  # type: ignore[assignment]

    def get(self, request: Request) -> Response:
        resource = self.resource
        query = parse_list_query(
            request.query_params,
            default_limit=settings.API_DEFAULT_PAGE_SIZE,
            max_limit=settings.API_MAX_PAGE_SIZE,
        )
        resource.before_list(request)
        queryset = apply_filters(resource.queryset(request), query.filters, resource.list_filters())
        if resource.list_columns:
            queryset = queryset.values(*resource.list_columns)
        rows, has_next, has_previous = paginate(
            queryset, query, resource.sortable, fetch=resource.fetch_rows
        )
        page = resource.rows_for_listing(rows) if resource.list_columns else resource.present(rows)
        body: dict[str, Any] = {
            resource.plural: [select_fields(data, query.fields) for data in page]
        }
        links = _links(request, resource, rows, has_next, has_previous)
        if links:
            body[f"{resource.plural}_links"] = links
        return Response(body)

    @idempotent
    def post(self, request: Request) -> Response:
        resource = self.resource
        data = request.data
        if isinstance(data, dict) and isinstance(data.get(resource.plural), list):
            return self._bulk_create(request, data[resource.plural])
        with transaction.atomic():
            obj = _create(request, resource, _body(request, resource.singular))
        fresh = resource.get_object(request, str(obj.pk))
        return Response({resource.singular: resource.present([fresh])[0]}, status=201)

    def _bulk_create(self, request: Request, bodies: list[Any]) -> Response:
        """Neutron's bulk create: all or nothing."""
        resource = self.resource
        if not bodies or not all(isinstance(body, dict) for body in bodies):
            raise Invalid(f"Invalid input for operation: '{resource.plural}' needs objects.")
        # One transaction, one publish per host and one live event per project for the whole
        # request (not one of each per object).
        with transaction.atomic(), dispatch.publish_once(), dispatch.coalesce_changes():
            created = [_create(request, resource, body).pk for body in bodies]
        objs = {obj.pk: obj for obj in resource.queryset(request).filter(pk__in=created)}
        return Response(
            {resource.plural: resource.present([objs[pk] for pk in created])}, status=201
        )


def _create(request: Request, resource: Resource[Any], body: dict[str, Any]) -> Any:
    """Create one object; `tags` in the body (Neutron's tag-creation) are set with it."""
    if resource.tag_model is None or "tags" not in body:
        return resource.create(request, body)
    tags = tag_body(body)
    obj = resource.create(request, {key: value for key, value in body.items() if key != "tags"})
    if tags:
        store_tags(request, resource, obj, tags)
    return obj


def _check_revision(request: Request, obj: Any) -> None:
    """Neutron's compare-and-swap: `If-Match: revision_number=N` refuses a stale write."""
    header = request.headers.get("If-Match", "")
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key != "revision_number":
            continue
        try:
            expected = int(value)
        except ValueError:
            raise Invalid(f"Invalid input for operation: If-Match {part.strip()!r}.") from None
        current = getattr(obj, "revision_number", None)
        if current != expected:
            raise PreconditionFailed(
                f"Constrained to {expected}, but current revision is {current}",
                neutron_type="RevisionNumberConstraintFailed",
            )


class MemberView(APIView):
    resource: Resource[Any] = None  # type: ignore[assignment]

    def get(self, request: Request, object_id: str) -> Response:
        resource = self.resource
        obj = resource.get_object(request, object_id)
        fields = [
            part for value in request.query_params.getlist("fields") for part in value.split(",")
        ]
        return Response({resource.singular: select_fields(resource.present([obj])[0], fields)})

    @idempotent
    def put(self, request: Request, object_id: str) -> Response:
        resource = self.resource
        obj = resource.get_object(request, object_id)
        _check_revision(request, obj)
        updated = resource.update(request, obj, _body(request, resource.singular))
        fresh = resource.get_object(request, str(updated.pk))
        return Response({resource.singular: resource.present([fresh])[0]})

    @idempotent
    def delete(self, request: Request, object_id: str) -> HttpResponse:
        resource = self.resource
        obj = resource.get_object(request, object_id)
        _check_revision(request, obj)
        resource.delete(request, obj)
        return HttpResponse(status=204)
