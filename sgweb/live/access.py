"""Who a live socket's user is now: access is checked again after it was granted.

A socket is authorised when it opens; an admin may then remove its user from a project, change
their role or deactivate them, and the user may log out. Each of those sends `access.changed`
to the user's sockets (and every socket also checks on its own now and then), which call
`current_user` and ask their consumer whether the user may still watch what it watches.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model


def current_user(scope: dict[str, Any]) -> Any | None:
    """The socket's user as the database says now, or None when their access ended: the
    session was logged out, expired or outlived a password change, or the user was
    deactivated or deleted."""
    opened_as = scope.get("user")
    opened_pk = getattr(opened_as, "pk", None)
    session = scope.get("session")
    session_key = getattr(session, "session_key", None)
    user: Any
    if session_key:
        # A fresh read of the session (the socket's copy was loaded when it opened); Django's
        # own `get_user` checks the backend, the user's state and the password hash.
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = auth.get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
    elif opened_pk is not None:
        # No session (sockets authenticated by other middleware, or tests): reload the user.
        user = get_user_model().objects.filter(pk=opened_pk).first()
    else:
        return None
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if opened_pk is not None and user.pk != opened_pk:
        return None
    return user
