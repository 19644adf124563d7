"""`X-Auth-Token` authentication: the header carries an ApiToken key, looked up by its hash."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import OperationalError, connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from sgweb.tenancy.models import ApiToken, hash_token_key

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Writing last_used_at on every request would make every GET a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SQLITE_TOUCH_WAIT_MS = 50


def touch_last_used(token: ApiToken, now: datetime) -> None:
    """Note when the token was used, without ever making a request wait for the write lock.

    On SQLite one writer at a time holds the database (a bulk create may hold it for
    seconds); reads go on beside it (WAL), and so must token checks: the note waits at most
    SQLITE_TOUCH_WAIT_MS, else it is left to a later request."""
    stamp = ApiToken.objects.filter(pk=token.pk)
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        stamp.update(last_used_at=now)
        token.last_used_at = now
        return
    wait_ms = int(float(connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)) * 1000)
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_TOUCH_WAIT_MS}")
        try:
            stamp.update(last_used_at=now)
            token.last_used_at = now
        except OperationalError:
            return  # "database is locked": somebody is writing; a later request notes it
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {wait_ms}")


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
            touch_last_used(token, now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A 401 (not 403) when no credentials were sent, as Keystone does.
        return 'Keystone uri="/networking"'
