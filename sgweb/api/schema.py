"""OpenAPI descriptions of the Neutron resources (drf-spectacular).

The views are generic, so each resource gets documented subclasses here: its object schema,
the `{"x": {...}}` / `{"xs": [...]}` envelopes, list parameters and error responses.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from sgweb.api.fielddocs import FieldMap
from sgweb.api.resource import Resource
from sgweb.api.tags import TagsView, TagView
from sgweb.api.views import CollectionView, MemberView


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "sgweb.api.auth.TokenAuthentication"
    name = "X-Auth-Token"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}


NEUTRON_ERROR = inline_serializer(
    name="NeutronError",
    fields={
        "NeutronError": inline_serializer(
            name="NeutronErrorBody",
            fields={
                "type": serializers.CharField(),
                "message": serializers.CharField(),
                "detail": serializers.CharField(allow_blank=True),
            },
        )
    },
)
ERRORS = {400: NEUTRON_ERROR, 401: NEUTRON_ERROR, 403: NEUTRON_ERROR, 404: NEUTRON_ERROR}
WRITE_ERRORS = {**ERRORS, 409: NEUTRON_ERROR}

STANDARD_FIELDS: FieldMap = {
    "id": serializers.UUIDField(read_only=True),
    "tenant_id": serializers.CharField(help_text="The project id (32 hex digits)."),
    "project_id": serializers.CharField(help_text="Same as tenant_id."),
    "tags": serializers.ListField(child=serializers.CharField(), read_only=True),
    "created_at": serializers.DateTimeField(read_only=True),
    "updated_at": serializers.DateTimeField(read_only=True),
    "revision_number": serializers.IntegerField(read_only=True),
}

LIST_PARAMETERS = [
    OpenApiParameter("fields", str, many=True, description="Only these attributes."),
    OpenApiParameter("limit", int, description="Page size (default 100, at most 1000)."),
    OpenApiParameter("marker", OpenApiTypes.UUID, description="Last id of the previous page."),
    OpenApiParameter("sort_key", str, many=True),
    OpenApiParameter("sort_dir", str, many=True, enum=["asc", "desc"]),
    OpenApiParameter("page_reverse", bool),
]


def _link_list(name: str) -> serializers.Serializer[Any]:
    return inline_serializer(
        name=name,
        fields={"rel": serializers.CharField(), "href": serializers.URLField()},
        many=True,
    )


def documented(
    resource: Resource[Any],
    fields: FieldMap,
    writable: FieldMap,
) -> tuple[type[CollectionView], type[MemberView]]:
    """Collection and member view classes for `resource`, with their OpenAPI description."""
    title = "".join(part.capitalize() for part in resource.singular.split("_"))
    item = inline_serializer(name=title, fields={**STANDARD_FIELDS, **fields})
    one = inline_serializer(name=f"{title}Envelope", fields={resource.singular: item})
    many = inline_serializer(
        name=f"{title}ListEnvelope",
        fields={
            resource.plural: inline_serializer(
                name=f"{title}Item", fields={**STANDARD_FIELDS, **fields}, many=True
            ),
            f"{resource.plural}_links": _link_list(f"{title}Links"),
        },
    )
    body = inline_serializer(
        name=f"{title}Request",
        fields={resource.singular: inline_serializer(name=f"{title}Fields", fields=writable)},
    )
    filters = [OpenApiParameter(name, str, many=True) for name in resource.list_filters()]
    tags = [resource.path]
    object_id = OpenApiParameter("object_id", OpenApiTypes.UUID, OpenApiParameter.PATH)

    @extend_schema_view(
        get=extend_schema(
            operation_id=f"list_{resource.plural}",
            summary=f"List {resource.plural.replace('_', ' ')}",
            parameters=LIST_PARAMETERS + filters,
            responses={200: many, **ERRORS},
            tags=tags,
        ),
        post=extend_schema(
            operation_id=f"create_{resource.singular}",
            summary=f"Create a {resource.singular.replace('_', ' ')}",
            request=body,
            responses={201: one, **WRITE_ERRORS},
            tags=tags,
        ),
    )
    class Collection(CollectionView):
        pass

    @extend_schema_view(
        get=extend_schema(
            operation_id=f"show_{resource.singular}",
            parameters=[object_id, OpenApiParameter("fields", str, many=True)],
            responses={200: one, **ERRORS},
            tags=tags,
        ),
        put=extend_schema(
            operation_id=f"update_{resource.singular}",
            parameters=[object_id],
            description="Partial update: only the attributes given change.",
            request=body,
            responses={200: one, **WRITE_ERRORS},
            tags=tags,
        ),
        delete=extend_schema(
            operation_id=f"delete_{resource.singular}",
            parameters=[object_id],
            responses={204: None, **WRITE_ERRORS},
            tags=tags,
        ),
    )
    class Member(MemberView):
        pass

    Collection.__name__ = f"{title}CollectionView"
    Member.__name__ = f"{title}MemberView"
    return Collection, Member


TAG_LIST = inline_serializer(
    name="TagList", fields={"tags": serializers.ListField(child=serializers.CharField())}
)


def documented_tags(resource: Resource[Any]) -> tuple[type[TagsView], type[TagView]]:
    """The tag views of `resource` (standard-attr-tag), with their OpenAPI description."""
    title = "".join(part.capitalize() for part in resource.singular.split("_"))
    name = resource.singular
    tags = [resource.path]
    object_id = OpenApiParameter("object_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
    tag = OpenApiParameter("tag", str, OpenApiParameter.PATH)

    @extend_schema_view(
        get=extend_schema(
            operation_id=f"list_{name}_tags",
            parameters=[object_id],
            responses={200: TAG_LIST, **ERRORS},
            tags=tags,
        ),
        put=extend_schema(
            operation_id=f"replace_{name}_tags",
            parameters=[object_id],
            request=TAG_LIST,
            responses={200: TAG_LIST, **WRITE_ERRORS},
            tags=tags,
        ),
        post=extend_schema(
            operation_id=f"add_{name}_tags",
            parameters=[object_id],
            request=TAG_LIST,
            responses={201: TAG_LIST, **WRITE_ERRORS},
            tags=tags,
        ),
        delete=extend_schema(
            operation_id=f"remove_{name}_tags",
            parameters=[object_id],
            responses={204: None, **WRITE_ERRORS},
            tags=tags,
        ),
    )
    class Tags(TagsView):
        pass

    @extend_schema_view(
        get=extend_schema(
            operation_id=f"check_{name}_tag",
            parameters=[object_id, tag],
            responses={204: None, **ERRORS},
            tags=tags,
        ),
        put=extend_schema(
            operation_id=f"add_{name}_tag",
            parameters=[object_id, tag],
            request=None,
            responses={201: None, **WRITE_ERRORS},
            tags=tags,
        ),
        delete=extend_schema(
            operation_id=f"remove_{name}_tag",
            parameters=[object_id, tag],
            responses={204: None, **WRITE_ERRORS},
            tags=tags,
        ),
    )
    class OneTag(TagView):
        pass

    Tags.__name__ = f"{title}TagsView"
    OneTag.__name__ = f"{title}TagView"
    return Tags, OneTag
