"""The dashboard's side of access control, on top of `sgweb.tenancy.access`.

Objects outside a member's projects do not exist for them (404, never 403), so a guessed URL
reveals nothing; a reader trying to change something they can see gets 403.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404

from sgweb.tenancy import access
from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import ActionError
from sgweb.tenancy.models import Project

M = TypeVar("M", bound=Model)

role_of = access.role_of
is_admin = access.is_admin
sees_everything = access.sees_all_projects
can_change_project = access.can_change_project


def is_reader(user: Any) -> bool:
    return role_of(user) == Role.READER


def visible_projects(user: Any) -> QuerySet[Project]:
    return access.visible_projects(user).order_by("name")


def scope(queryset: QuerySet[M], user: Any, project_field: str = "project") -> QuerySet[M]:
    """Only the rows of projects the user may see."""
    return access.scope(user, queryset, project_field)


def get_visible_or_404(
    queryset: QuerySet[M], user: Any, project_field: str = "project", **lookup: Any
) -> M:
    try:
        return scope(queryset, user, project_field).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, ValidationError) as error:
        # A malformed UUID in the URL is just another object that does not exist.
        raise Http404("No such object") from error


def require_change(user: Any, project_id: Any) -> None:
    """403 for anyone who may see the project but not change it (readers)."""
    if not can_change_project(user, project_id):
        raise PermissionDenied("You may look at this but not change it.")


def require_admin(user: Any) -> None:
    if not is_admin(user):
        raise PermissionDenied("Only an administrator can do this.")


def raise_for_access(error: ActionError) -> None:
    """Turn an action's 403/404 into Django's, so the page answers like any other refusal."""
    if error.status_code == 404:
        raise Http404(error.message) from error
    if error.status_code == 403:
        raise PermissionDenied(error.message) from error
