"""Authentication backends: login throttling (django-axes) in front of Django's own."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottlingBackend(AxesStandaloneBackend):  # type: ignore[misc]
    """django-axes' lockout check for logins that come with a request (the login page, the
    admin). Logins without one (`Client.login` in tests, scripts) have no client address to
    throttle: axes would refuse them with an error, here they go on to the next backend."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)  # type: ignore[no-any-return]
