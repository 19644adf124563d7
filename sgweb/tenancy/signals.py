"""Tell a user's live sockets when their access may have changed.

Model signals rather than calls in the actions: memberships, roles and users also change
through Django's admin and auth views (a deactivation, a password change, a logout), and a
socket must hear of every one. The event leaves after commit (`dispatch.send_event_on_commit`);
the sockets then check again what the database says (`sgweb.live.access`).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save

from sgweb import dispatch
from sgweb.tenancy import accessgen
from sgweb.tenancy.models import ApiToken, Membership, Profile


def access_changed(user_id: Any) -> None:
    # Token checks cached by the API's server processes are made again (sgweb.api.auth).
    accessgen.changed()
    if user_id is None:
        return
    dispatch.send_event_on_commit(
        dispatch.EventKind.ACCESS_CHANGED,
        {"user_id": int(user_id)},
        scope=dispatch.user_scope(user_id),
    )


def _of_membership_or_profile(sender: Any, instance: Membership | Profile, **kwargs: Any) -> None:
    access_changed(instance.user_id)


def _of_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Any save: is_active, is_superuser, the password (which ends its sessions) may have changed.
    access_changed(instance.pk)


def _of_token(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    # A token created, changed (its expiry) or revoked: no socket follows a token, but the
    # API's cached token checks must not outlive it.
    accessgen.changed()


def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        access_changed(user.pk)


def connect() -> None:
    user_model = get_user_model()
    for model in (Membership, Profile):
        post_save.connect(_of_membership_or_profile, sender=model, dispatch_uid=f"access-{model}")
        post_delete.connect(
            _of_membership_or_profile, sender=model, dispatch_uid=f"access-del-{model}"
        )
    post_save.connect(_of_user, sender=user_model, dispatch_uid="access-user")
    post_delete.connect(_of_user, sender=user_model, dispatch_uid="access-user-del")
    user_logged_out.connect(_on_logout, dispatch_uid="access-logout")
    post_save.connect(_of_token, sender=ApiToken, dispatch_uid="access-token")
    post_delete.connect(_of_token, sender=ApiToken, dispatch_uid="access-token-del")


__all__ = ["access_changed", "connect"]
