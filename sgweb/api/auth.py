"""`X-Auth-Token` authentication: the header carries an ApiToken key, looked up by its hash."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from sgweb.tenancy.models import ApiToken, hash_token_key

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Writing last_used_at on every request would make every GET a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_AUTH_TOKEN"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        key = request.META.get(self.header)
        if key is None:
            # Also `Authorization: Bearer <key>`, what curl users and HTTP libraries expect.
            scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
            if scheme.lower() != "bearer":
                return None
            key = value
        key = key.strip()
        if not key:
            raise exceptions.AuthenticationFailed("Empty X-Auth-Token.")
        token = (
            ApiToken.objects.select_related("user", "user__profile")
            .filter(key_hash=hash_token_key(key))
            .first()
        )
        now = timezone.now()
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            raise exceptions.AuthenticationFailed(
                "The request you have made requires authentication."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is disabled.")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A 401 (not 403) when no credentials were sent, as Keystone does.
        return 'Keystone uri="/networking"'
