"""A Neutron API resource: how to scope, filter, show, create, change and delete it.

Each app describes its resources by subclassing `Resource` (in its `api/` package); the
generic views in `sgweb.api.views` do the HTTP part the same way for all of them.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from django.db.models import Model, Q, QuerySet
from rest_framework.request import Request

from sgweb.api.query import Filter, as_int, as_time, as_uuid
from sgweb.api.tagquery import fill_tags, tag_filters
from sgweb.tenancy.access import (
    can_see_project,
    is_admin,
    member_project_ids,
    role_of,
    scope,
    sees_all_projects,
)
from sgweb.tenancy.errors import Invalid, MethodNotAllowed, NotFound, PermissionDenied
from sgweb.tenancy.models import Project

M = TypeVar("M", bound=Model)

# Fields a client may send back unchanged (e.g. a whole GET body) without being refused.
STANDARD_READ_ONLY = frozenset(
    {"id", "tenant_id", "project_id", "created_at", "updated_at", "revision_number", "tags"}
)

# Filters and sort keys every project-owned resource offers.
PROJECT_FILTERS = {
    "tenant_id": Filter("project_id", as_uuid),
    "project_id": Filter("project_id", as_uuid),
    "revision_number": Filter("revision_number", as_int),
    "description": Filter("description"),
    # standard-attr-timestamp: what changed since a time.
    "changed_since": Filter("updated_at__gte", as_time),
}
STANDARD_SORTS = {
    "id": "id",
    "name": "name",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "tenant_id": "project_id",
    "project_id": "project_id",
    "revision_number": "revision_number",
}


def required_field(name: str) -> Invalid:
    """The refusal of a body that lacks `name`, as Neutron words it."""
    return Invalid(
        f"Invalid input for operation: {name} is required.",
        errors={name: ["This field is required."]},
    )


class Resource(Generic[M]):
    singular: ClassVar[str]
    plural: ClassVar[str]
    path: ClassVar[str]
    not_found_type: ClassVar[str]
    not_found_message: ClassVar[str]  # formatted with id=
    filters: ClassVar[dict[str, Filter]] = {}
    sortable: ClassVar[dict[str, str]] = {}
    # Fields accepted in a create body (Neutron name -> action keyword) besides the project.
    create_fields: ClassVar[dict[str, str]] = {}
    update_fields: ClassVar[dict[str, str]] = {}
    read_only: ClassVar[frozenset[str]] = STANDARD_READ_ONLY
    # The model whose rows carry Neutron's tags (None: the resource has no tags).
    tag_model: ClassVar[type[Model] | None] = None

    def list_filters(self) -> dict[str, Filter]:
        """Every filter a list accepts; any other name is refused (filter-validation)."""
        if self.tag_model is None:
            return self.filters
        return {**self.filters, **tag_filters(self.tag_model)}

    # When set, a list reads its page as `.values(*list_columns)` rows and presents them with
    # `rows_to_dicts`: building a model instance per row was most of a big page's CPU.
    list_columns: ClassVar[tuple[str, ...]] = ()

    def fetch_rows(self, queryset: QuerySet[Any]) -> list[Any]:
        """Reads a list's page (`list_columns` rows or model instances)."""
        return list(queryset)

    def present(self, objs: list[M]) -> list[dict[str, Any]]:
        """What the API answers: `to_dicts` with each resource's tags."""
        return self.with_tags(self.to_dicts(objs))

    def present_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`present` for a list page read as `list_columns` rows."""
        return self.with_tags(self.rows_to_dicts(rows))

    def rows_for_listing(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What a list page answers for its `list_columns` rows: `present_rows`, unless a
        resource writes parts of it faster (values the renderer writes as they are,
        `sgweb.api.renderers.RenderedList`)."""
        return self.present_rows(rows)

    def with_tags(self, dicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.tag_model is not None:
            fill_tags(self.tag_model, dicts)
        return dicts

    # --- reading ---

    def queryset(self, request: Request) -> QuerySet[M]:
        raise NotImplementedError

    def scoped(
        self, request: Request, queryset: QuerySet[M], field: str = "project"
    ) -> QuerySet[M]:
        return scope(request.user, queryset, field)

    def scoped_or_shared(self, request: Request, queryset: QuerySet[M], shared: Q) -> QuerySet[M]:
        """`scoped`, plus what `shared` selects for a project member (shared networks are
        visible to every project, as in Neutron)."""
        if not sees_all_projects(request.user) and role_of(request.user):
            return queryset.filter(Q(pk__in=self.scoped(request, queryset).values("pk")) | shared)
        return self.scoped(request, queryset)

    def to_dict(self, obj: M) -> dict[str, Any]:
        return self.to_dicts([obj])[0]

    def to_dicts(self, objs: list[M]) -> list[dict[str, Any]]:
        """A page at once, so related rows can be fetched in one query per relation."""
        return [self.to_dict(obj) for obj in objs]

    def rows_to_dicts(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The dictionaries of `list_columns` rows (resources that set `list_columns`)."""
        raise NotImplementedError

    def before_list(self, request: Request) -> None:
        """A hook run before listing (security groups create missing default groups)."""

    def not_found(self, object_id: object) -> NotFound:
        return NotFound(
            self.not_found_message.format(id=object_id), neutron_type=self.not_found_type
        )

    def get_object(self, request: Request, object_id: str) -> M:
        try:
            key = uuid.UUID(object_id)
        except ValueError:
            raise self.not_found(object_id) from None
        obj = self.queryset(request).filter(pk=key).first()
        if obj is None:
            raise self.not_found(object_id)
        return obj

    # --- writing ---

    def create(self, request: Request, body: dict[str, Any]) -> M:
        raise MethodNotAllowed(f"Creating {self.plural} is not supported.")

    def update(self, request: Request, obj: M, body: dict[str, Any]) -> M:
        # Neutron's rules are immutable: delete and create instead.
        raise MethodNotAllowed(f"Updating {self.plural} is not supported.")

    def delete(self, request: Request, obj: M) -> None:
        raise MethodNotAllowed(f"Deleting {self.plural} is not supported.")

    # --- helpers for subclasses ---

    def map_fields(
        self,
        body: dict[str, Any],
        allowed: dict[str, str],
        *,
        current: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Neutron body -> action keywords; refuses unknown and changed read-only attributes."""
        values: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in body.items():
            if key in allowed:
                values[allowed[key]] = value
            elif key in self.read_only:
                if current is not None and key in current and current[key] != value:
                    raise Invalid(
                        f"Invalid input for operation: Cannot update read-only attribute {key}"
                    )
            else:
                unknown.append(key)
        if unknown:
            raise Invalid(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'")
        return values


def project_for_create(request: Request, body: dict[str, Any]) -> Project:
    """The project a new object goes into: `project_id`/`tenant_id` from the body, else the
    caller's only project. Only admins may name a project they are not a member of."""
    user = request.user
    given = body.get("project_id") or body.get("tenant_id")
    both = body.get("project_id") and body.get("tenant_id")
    if both and _as_uuid(body["project_id"]) != _as_uuid(body["tenant_id"]):
        raise Invalid("Invalid input for operation: 'project_id' and 'tenant_id' do not match")
    if given:
        project_id = _as_uuid(given)
        project = Project.objects.filter(pk=project_id).first() if project_id else None
        if project is None or not can_see_project(user, project.id):
            raise NotFound(f"Project {given} could not be found.", neutron_type="ProjectNotFound")
        if project.id not in member_project_ids(user) and not is_admin(user):
            raise PermissionDenied(
                "Specifying 'project_id' or 'tenant_id' other than the authenticated project in "
                "request requires admin privileges",
                neutron_type="HTTPForbidden",
            )
        return project
    memberships = sorted(member_project_ids(user))
    if len(memberships) == 1:
        return Project.objects.get(pk=memberships[0])
    if not memberships:
        raise Invalid(
            "Invalid input for operation: you belong to no project; pass project_id "
            "(admins may create objects in any project)."
        )
    raise Invalid(
        "Invalid input for operation: you belong to several projects; say which with project_id."
    )


def _as_uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
