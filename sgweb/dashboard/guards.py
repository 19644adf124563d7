"""The dashboard's refusals, in HTTP: who may do what is `sgweb.tenancy.access`, the one
access module; this turns its answers into Django's 404 and 403.

Objects outside a member's projects do not exist for them (404, never 403), so a guessed URL
reveals nothing; a reader trying to change something they can see gets 403.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404

from sgweb.tenancy.access import can_change_project, is_admin, scope
from sgweb.tenancy.errors import ActionError

M = TypeVar("M", bound=Model)


def get_visible_or_404(
    queryset: QuerySet[M], user: Any, project_field: str = "project", **lookup: Any
) -> M:
    try:
        return scope(user, queryset, project_field).get(**lookup)
    except (ObjectDoesNotExist, ValueError, ValidationError) as error:
        # A malformed UUID in the URL is just another object that does not exist.
        raise Http404("No such object") from error


def deny_unless_changeable(user: Any, project_id: Any) -> None:
    """403 for anyone who may see the project but not change it (readers)."""
    if not can_change_project(user, project_id):
        raise PermissionDenied("You may look at this but not change it.")


def deny_unless_admin(user: Any) -> None:
    if not is_admin(user):
        raise PermissionDenied("Only an administrator can do this.")


def raise_for_access(error: ActionError) -> None:
    """Turn an action's 403/404 into Django's, so the page answers like any other refusal."""
    if error.status_code == 404:
        raise Http404(error.message) from error
    if error.status_code == 403:
        raise PermissionDenied(error.message) from error
