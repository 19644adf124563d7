"""Who may see and change what: the role rules every action, API view and page goes through.

An outsider asking for an object of a project they cannot see gets NotFound, never
PermissionDenied, so that ids cannot be probed.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, TypeVar

from django.db.models import Model, QuerySet

from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import NotFound, PermissionDenied
from sgweb.tenancy.models import Membership, Profile, Project

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    AnyUser = User | AnonymousUser  # what request.user is

M = TypeVar("M", bound=Model)

_PROJECT_IDS_CACHE = "_sgweb_project_ids"


def role_of(user: AnyUser | None) -> str:
    if user is None or not user.is_authenticated or not user.is_active:
        return ""
    if user.is_superuser:
        return Role.ADMIN
    try:
        return user.profile.role
    except Profile.DoesNotExist:
        return Role.MEMBER


def is_admin(user: AnyUser | None) -> bool:
    return role_of(user) == Role.ADMIN


def sees_all_projects(user: AnyUser | None) -> bool:
    return role_of(user) in (Role.ADMIN, Role.READER)


def member_project_ids(user: AnyUser | None) -> frozenset[uuid.UUID]:
    """The projects the user belongs to, cached on the user object for the request."""
    if user is None or not user.is_authenticated:
        return frozenset()
    cached = getattr(user, _PROJECT_IDS_CACHE, None)
    if cached is None:
        cached = frozenset(
            Membership.objects.filter(user=user).values_list("project_id", flat=True)
        )
        setattr(user, _PROJECT_IDS_CACHE, cached)
    return cached


def remember_project_ids(user: AnyUser, project_ids: frozenset[uuid.UUID]) -> None:
    """What `member_project_ids` would read, known already (the API's cached token checks)."""
    setattr(user, _PROJECT_IDS_CACHE, project_ids)


def forget_cached_access(user: AnyUser) -> None:
    if hasattr(user, _PROJECT_IDS_CACHE):
        delattr(user, _PROJECT_IDS_CACHE)


def is_reader(user: AnyUser | None) -> bool:
    return role_of(user) == Role.READER


def visible_projects(user: AnyUser | None) -> QuerySet[Project]:
    """The projects a user may see, by name."""
    projects = Project.objects.all()
    if not sees_all_projects(user):
        projects = projects.filter(id__in=member_project_ids(user))
    return projects.order_by("name")


def writable_projects(user: AnyUser | None) -> QuerySet[Project]:
    role = role_of(user)
    if role == Role.ADMIN:
        return Project.objects.all()
    if role == Role.MEMBER:
        return Project.objects.filter(id__in=member_project_ids(user))
    return Project.objects.none()


def scope(user: AnyUser | None, queryset: QuerySet[M], field: str = "project") -> QuerySet[M]:
    """Narrow a queryset to the objects of the projects the user may see."""
    if not role_of(user):
        return queryset.none()
    if sees_all_projects(user):
        return queryset
    return queryset.filter(**{f"{field}_id__in": member_project_ids(user)})


def can_see_project(user: AnyUser | None, project_id: uuid.UUID | str | None) -> bool:
    if not role_of(user):
        return False
    if sees_all_projects(user):
        return True
    if project_id is None:
        return False
    return _as_uuid(project_id) in member_project_ids(user)


def can_change_project(user: AnyUser | None, project_id: uuid.UUID | str | None) -> bool:
    role = role_of(user)
    if role == Role.ADMIN:
        return True
    return role == Role.MEMBER and can_see_project(user, project_id)


def require_change(
    user: AnyUser | None,
    project_id: uuid.UUID | str | None,
    *,
    not_found: str,
    neutron_type: str = "HTTPNotFound",
) -> None:
    """Refuse unless the user may change objects of the project.

    Unseeable projects answer `not_found` (404); seeable but read-only ones answer 403.
    """
    if not can_see_project(user, project_id):
        raise NotFound(not_found, neutron_type=neutron_type)
    if not can_change_project(user, project_id):
        raise PermissionDenied(
            "Readers may look but not change anything.", neutron_type="PolicyNotAuthorized"
        )


def require_project_change(user: AnyUser | None, project: Project) -> None:
    """Refuse unless the user may create objects in the project (as `require_change`)."""
    require_change(user, project.id, not_found=f"Project {project.id} could not be found.")


def require_admin(user: AnyUser | None, what: str = "This operation") -> None:
    if not is_admin(user):
        raise PermissionDenied(
            f"{what} is restricted to admins.", neutron_type="PolicyNotAuthorized"
        )


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID | None:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
