"""Projects, memberships, roles, quotas and API tokens.

Refusals raise the `sgweb.tenancy.errors.ActionError` family and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from sgweb.audit.choices import AuditAction
from sgweb.audit.record import record
from sgweb.tenancy.access import forget_cached_access, is_admin, require_admin, require_change
from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, PermissionDenied
from sgweb.tenancy.hooks import project_hooks
from sgweb.tenancy.models import (
    TOKEN_PREFIX_LENGTH,
    ApiToken,
    Membership,
    Profile,
    Project,
    Quota,
    Tag,
    generate_token_key,
    hash_token_key,
)
from sgweb.tenancy.representation import project_to_dict
from sgweb.tenancy.standard import StandardAttributes, changed_fields
from sgweb.tenancy.validators import (
    CANNOT_CHANGE,
    Errors,
    clean_description,
    clean_name,
    refuse_fields,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

    Actor = User | AnonymousUser | None  # request.user, or None for the system


def _project_snapshot(project: Project) -> dict[str, Any]:
    return project_to_dict(project)


def create_project(actor: Actor, *, name: str, description: str = "") -> Project:
    require_admin(actor, "Creating a project")
    errors = Errors()
    clean = clean_name(errors, name)
    if not clean:
        errors.add("name", "A project needs a name.")
    desc = clean_description(errors, description)
    errors.raise_if_any()
    if Project.objects.filter(name=clean).exists():
        raise Conflict(f"Project {clean} already exists.", errors={"name": ["This name is taken."]})
    with transaction.atomic():
        project = Project.objects.create(name=clean, description=desc)
        Quota.objects.create(project=project)
        record(
            actor,
            AuditAction.CREATE,
            "project",
            project.id,
            project.name,
            project_id=project.id,
            after=_project_snapshot(project),
        )
        for created in project_hooks.created:
            created(project, actor)
    return project


def update_project(actor: Actor, project: Project, **changes: Any) -> Project:
    require_admin(actor, "Changing a project")
    refuse_fields(changes, {"name", "description"}, CANNOT_CHANGE)
    errors = Errors()
    values: dict[str, Any] = {}
    if "name" in changes:
        values["name"] = clean_name(errors, changes["name"])
        if not values["name"]:
            errors.add("name", "A project needs a name.")
    if "description" in changes:
        values["description"] = clean_description(errors, changes["description"])
    errors.raise_if_any()
    if (
        "name" in values
        and Project.objects.filter(name=values["name"]).exclude(pk=project.pk).exists()
    ):
        raise Conflict(
            f"Project {values['name']} already exists.", errors={"name": ["This name is taken."]}
        )
    with transaction.atomic():
        before = _project_snapshot(project)
        changed = changed_fields(project, values)
        if not changed:
            return project
        project.save_changes(changed)
        record(
            actor,
            AuditAction.UPDATE,
            "project",
            project.id,
            project.name,
            project_id=project.id,
            before=before,
            after=_project_snapshot(project),
        )
    return project


def delete_project(actor: Actor, project: Project) -> None:
    require_admin(actor, "Deleting a project")
    if any(in_use(project) for in_use in project_hooks.in_use):
        raise Conflict(
            f"Project {project.name} still has ports, networks or security groups.",
            neutron_type="ProjectInUse",
        )
    with transaction.atomic():
        before = _project_snapshot(project)
        project_id, name = project.id, project.name
        project.security_group_rules.all().delete()
        project.security_groups.all().delete()
        project.delete()
        record(actor, AuditAction.DELETE, "project", project_id, name, before=before)


def add_member(actor: Actor, project: Project, user: User) -> Membership:
    require_admin(actor, "Managing project members")
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=user, project=project)
        if created:
            record(
                actor,
                AuditAction.CREATE,
                "membership",
                membership.pk,
                f"{user} in {project.name}",
                project_id=project.id,
                after={"user": user.get_username(), "project": project.name},
            )
    forget_cached_access(user)
    return membership


def remove_member(actor: Actor, project: Project, user: User) -> None:
    require_admin(actor, "Managing project members")
    with transaction.atomic():
        membership = Membership.objects.filter(user=user, project=project).first()
        if membership is None:
            raise NotFound(f"{user} is not a member of {project.name}.")
        membership_id = membership.pk
        membership.delete()
        record(
            actor,
            AuditAction.DELETE,
            "membership",
            membership_id,
            f"{user} in {project.name}",
            project_id=project.id,
            before={"user": user.get_username(), "project": project.name},
        )
    forget_cached_access(user)


def set_role(actor: Actor, user: User, role: str) -> Profile:
    require_admin(actor, "Changing roles")
    if role not in Role.values:
        raise Invalid.from_errors({"role": [f"'{role}' is not one of {', '.join(Role.values)}."]})
    if user == actor and role != Role.ADMIN:
        raise Conflict("Admins cannot demote themselves; ask another admin.")
    with transaction.atomic():
        profile, _ = Profile.objects.get_or_create(user=user)
        before = {"user": user.get_username(), "role": profile.role}
        if profile.role != role:
            profile.role = role
            profile.save()
            record(
                actor,
                AuditAction.UPDATE,
                "profile",
                profile.pk,
                user.get_username(),
                before=before,
                after={"user": user.get_username(), "role": role},
            )
    return profile


def create_user(
    actor: Actor,
    *,
    username: str,
    password: str | None = None,
    email: str = "",
    role: str = Role.MEMBER,
) -> User:
    require_admin(actor, "Creating users")
    errors = Errors()
    clean = clean_name(errors, username, "username")
    if not clean:
        errors.add("username", "A user needs a name.")
    if role not in Role.values:
        errors.add("role", f"'{role}' is not one of {', '.join(Role.values)}.")
    errors.raise_if_any()
    user_model = get_user_model()
    if user_model.objects.filter(username=clean).exists():
        raise Conflict(f"User {clean} already exists.", errors={"username": ["Name taken."]})
    with transaction.atomic():
        user = user_model.objects.create_user(username=clean, email=email, password=password)
        Profile.objects.create(user=user, role=role)
        record(
            actor,
            AuditAction.CREATE,
            "user",
            user.pk,
            clean,
            after={"username": clean, "email": email, "role": role},
        )
    return user


def quota_of(project: Project) -> Quota:
    quota, _ = Quota.objects.get_or_create(project=project)
    return quota


def set_quota(
    actor: Actor,
    project: Project,
    *,
    security_groups: int | str | None = None,  # the dashboard's form gives strings
    security_group_rules: int | str | None = None,
) -> Quota:
    """Limits are counts, or -1 for unlimited (as in Neutron)."""
    require_admin(actor, "Changing quotas")
    errors = Errors()
    values: dict[str, int] = {}
    for field, value in (
        ("security_groups", security_groups),
        ("security_group_rules", security_group_rules),
    ):
        if value is None:
            continue
        try:
            number = int(value)
        except (TypeError, ValueError):
            errors.add(field, f"'{value}' is not an integer.")
            continue
        if number < -1:
            errors.add(field, "A quota is a count, or -1 for unlimited.")
        values[field] = number
    errors.raise_if_any()
    with transaction.atomic():
        quota = Quota.objects.select_for_update().get(pk=quota_of(project).pk)
        before = {
            "security_groups": quota.security_groups,
            "security_group_rules": quota.security_group_rules,
        }
        changed = changed_fields(quota, values)
        if not changed:
            return quota
        for key, value in changed.items():
            setattr(quota, key, value)
        quota.save()
        record(
            actor,
            AuditAction.UPDATE,
            "quota",
            quota.pk,
            f"quota of {project.name}",
            project_id=project.id,
            before=before,
            after={
                "security_groups": quota.security_groups,
                "security_group_rules": quota.security_group_rules,
            },
        )
    return quota


def create_api_token(
    actor: Actor,
    *,
    name: str,
    expires_at: datetime | None = None,
    user: User | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user` (default: the actor). Returns it with its key, shown only once."""
    owner = user or actor
    if owner != actor:
        require_admin(actor, "Creating tokens for someone else")
    if actor is None or not actor.is_authenticated:
        raise PermissionDenied("Log in to create API tokens.")
    owner = cast("User", owner)  # `user`, or the actor, who is logged in
    errors = Errors()
    clean = clean_name(errors, name)
    if not clean:
        errors.add("name", "Give the token a name so you can recognise it later.")
    if expires_at is not None and expires_at <= timezone.now():
        errors.add("expires_at", "The expiry must lie in the future.")
    errors.raise_if_any()
    key = generate_token_key()
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=owner,
            name=clean,
            key_hash=hash_token_key(key),
            prefix=key[:TOKEN_PREFIX_LENGTH],
            expires_at=expires_at,
        )
        record(
            actor,
            AuditAction.CREATE,
            "api_token",
            token.id,
            f"{owner.get_username()}: {clean}",
            after={"name": clean, "prefix": token.prefix, "expires_at": expires_at},
        )
    return token, key


def revoke_api_token(actor: User | AnonymousUser, token: ApiToken) -> None:
    if token.user_id != actor.pk and not is_admin(actor):
        raise NotFound("API token not found.")
    with transaction.atomic():
        before = {"name": token.name, "prefix": token.prefix}
        token_id, repr_ = token.id, f"{token.user.get_username()}: {token.name}"
        token.delete()
        record(actor, AuditAction.DELETE, "api_token", token_id, repr_, before=before)


# --- tags (Neutron's standard-attr-tag) ----------------------------------------------------

MAX_TAG_LENGTH = 255  # neutron.extensions.tagging.MAX_TAG_LEN
MAX_TAGS_PER_RESOURCE = 50  # neutron.extensions.tagging.MAX_TAGS_COUNT


def clean_tag(value: object) -> str:
    """One tag, in Neutron's words when it is refused. Commas are refused too (Neutron lets
    them in, but `?tags=a,b` could then never find the tag)."""
    if not isinstance(value, str):
        raise Invalid(f"Invalid input for operation: '{value}' is not a valid string.")
    if len(value) > MAX_TAG_LENGTH:
        raise Invalid(
            f"Invalid input for operation: '{value}' exceeds maximum length of {MAX_TAG_LENGTH}."
        )
    if not value or "," in value or any(not char.isprintable() for char in value):
        raise Invalid(
            f"Invalid input for operation: '{value}' is not a tag: tags are non-empty and "
            "carry no comma or control character."
        )
    return value


def clean_tag_list(value: object) -> list[str]:
    """The body of `PUT .../tags`: a list of unique tags (validate_list_of_unique_strings)."""
    if not isinstance(value, list):
        raise Invalid(f"Invalid input for operation: '{value}' is not a list.")
    tags = [clean_tag(item) for item in value]
    duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
    if duplicates:
        raise Invalid(f"Invalid input for operation: Duplicate items in the list: '{duplicates}'.")
    return tags


def tags_of(obj: StandardAttributes) -> list[str]:
    return sorted(obj.tag_set.values_list("tag", flat=True))


def set_tags(
    actor: Actor,
    obj: StandardAttributes,
    kind: str,
    tags: Iterable[str],
    *,
    not_found: str,
    neutron_type: str = "HTTPNotFound",
) -> list[str]:
    """Make `tags` the resource's tags (adding one, removing one or all are this too): bump
    its revision as any change does, and keep an audit entry. `kind` names the resource as
    the audit does ("security_group", "port", ...). Tags never touch a firewall."""
    project_id = getattr(obj, "project_id", None)
    require_change(actor, project_id, not_found=not_found, neutron_type=neutron_type)
    wanted = sorted(set(tags))
    if len(wanted) > MAX_TAGS_PER_RESOURCE:
        raise Invalid(
            f"Bad {kind}s request: The number of tags exceed the per-resource limit of "
            f"{MAX_TAGS_PER_RESOURCE}.",
            neutron_type="BadRequest",
        )
    model = type(obj)
    with transaction.atomic():
        locked = model._default_manager.select_for_update().get(pk=obj.pk)
        before = tags_of(locked)
        if before == wanted:
            return before
        locked.tag_set.exclude(tag__in=wanted).delete()
        content_type = ContentType.objects.get_for_model(model)
        Tag.objects.bulk_create(
            Tag(content_type=content_type, object_id=locked.pk, tag=tag)
            for tag in wanted
            if tag not in before
        )
        locked.bump_revision()
        locked.save(update_fields=["revision_number", "updated_at"])
        record(
            actor,
            AuditAction.UPDATE,
            kind,
            locked.pk,
            f"{getattr(locked, 'name', '') or locked.pk} (tags)",
            project_id=project_id,
            before={"tags": before},
            after={"tags": wanted},
        )
    return wanted
