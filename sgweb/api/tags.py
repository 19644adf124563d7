"""Neutron's tags (standard-attr-tag) on any resource with standard attributes.

`/v2.0/{resource}/{id}/tags` (GET, PUT replaces, POST adds, DELETE removes all) and
`/v2.0/{resource}/{id}/tags/{tag}` (GET 204 or TagNotFound, PUT adds, DELETE removes); the
list filters `tags`, `tags-any`, `not-tags`, `not-tags-any` (comma-separated, as Neutron).
Every write is `sgweb.tenancy.actions.set_tags`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpResponse
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from sgweb.api.resource import Resource
from sgweb.tenancy.actions import clean_tag, clean_tag_list, set_tags, tags_of
from sgweb.tenancy.errors import Invalid, NotFound
from sgweb.tenancy.standard import StandardAttributes


def tag_body(data: object) -> list[str]:
    if not isinstance(data, dict) or "tags" not in data:
        raise Invalid("Invalid input for operation: Invalid tags body.")
    return clean_tag_list(data["tags"])


def _tagged(request: Request, resource: Resource[Any], object_id: str) -> StandardAttributes:
    obj = resource.get_object(request, object_id)
    assert isinstance(obj, StandardAttributes)
    return obj


def store_tags(
    request: Request, resource: Resource[Any], obj: StandardAttributes, tags: Iterable[str]
) -> list[str]:
    return set_tags(
        request.user,
        obj,
        resource.singular,
        tags,
        not_found=resource.not_found_message.format(id=obj.pk),
        neutron_type=resource.not_found_type,
    )


def _tag_not_found(tag: str) -> NotFound:
    return NotFound(f"Tag {tag} could not be found.", neutron_type="TagNotFound")


class TagsView(APIView):
    """/v2.0/{resource}/{id}/tags"""

    resource: Resource[Any] = None  # type: ignore[assignment]

    def get(self, request: Request, object_id: str) -> Response:
        return Response({"tags": tags_of(_tagged(request, self.resource, object_id))})

    def put(self, request: Request, object_id: str) -> Response:
        """Replace every tag."""
        tags = tag_body(request.data)
        obj = _tagged(request, self.resource, object_id)
        store_tags(request, self.resource, obj, tags)
        return Response({"tags": tags})

    def post(self, request: Request, object_id: str) -> Response:
        """Add these tags, keep the others (Neutron's tag-creation)."""
        tags = tag_body(request.data)
        obj = _tagged(request, self.resource, object_id)
        store_tags(request, self.resource, obj, [*tags_of(obj), *tags])
        return Response({"tags": tags}, status=201)

    def delete(self, request: Request, object_id: str) -> HttpResponse:
        obj = _tagged(request, self.resource, object_id)
        store_tags(request, self.resource, obj, [])
        return HttpResponse(status=204)


class TagView(APIView):
    """/v2.0/{resource}/{id}/tags/{tag}"""

    resource: Resource[Any] = None  # type: ignore[assignment]

    def get(self, request: Request, object_id: str, tag: str) -> HttpResponse:
        clean_tag(tag)
        if tag not in tags_of(_tagged(request, self.resource, object_id)):
            raise _tag_not_found(tag)
        return HttpResponse(status=204)

    def put(self, request: Request, object_id: str, tag: str) -> HttpResponse:
        clean_tag(tag)
        obj = _tagged(request, self.resource, object_id)
        store_tags(request, self.resource, obj, [*tags_of(obj), tag])
        return HttpResponse(status=201)

    def delete(self, request: Request, object_id: str, tag: str) -> HttpResponse:
        clean_tag(tag)
        obj = _tagged(request, self.resource, object_id)
        current = tags_of(obj)
        if tag not in current:
            raise _tag_not_found(tag)
        store_tags(request, self.resource, obj, [kept for kept in current if kept != tag])
        return HttpResponse(status=204)
