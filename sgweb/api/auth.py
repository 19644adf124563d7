"""`X-Auth-Token` authentication: the header carries an ApiToken key, looked up by its hash."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import OperationalError, connection
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from sgweb.tenancy import accessgen
from sgweb.tenancy.access import member_project_ids, remember_project_ids
from sgweb.tenancy.models import ApiToken, hash_token_key

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Writing last_used_at on every request would make every GET a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SQLITE_TOUCH_WAIT_MS = 50
# A cached token check is made again after this long even if the access generation did not
# change: the bound on a revocation whose bump could not reach Redis.
CHECK_MAX_AGE_S = 10.0
MAX_CACHED_TOKENS = 10_000


@dataclass(frozen=True)
class _Check:
    token: ApiToken
    project_ids: frozenset[uuid.UUID]
    generation: bytes
    checked_at: float


class TokenChecks:
    """What token checks found, per process, by key hash: each API request saves the token's
    query (a three-table join) and the user's memberships (two of a small page's five queries,
    a quarter of its CPU). An entry holds while the access generation (`sgweb.tenancy.accessgen`)
    is the one it was made under: any token, user, role or membership change anywhere makes every
    process check again on its next request. Without Redis nothing is cached."""

    def __init__(self) -> None:
        self.entries: dict[str, _Check] = {}
        self.lock = threading.Lock()
        accessgen.on_local_change(self.clear)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def get(self, key_hash: str, generation: bytes | None) -> _Check | None:
        if generation is None:
            return None
        check = self.entries.get(key_hash)
        if check is None or check.generation != generation:
            return None
        if time.monotonic() - check.checked_at > CHECK_MAX_AGE_S:
            return None
        return check

    def put(self, key_hash: str, check: _Check) -> None:
        with self.lock:
            if len(self.entries) >= MAX_CACHED_TOKENS:
                self.entries.clear()
            self.entries[key_hash] = check


token_checks = TokenChecks()


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
        key_hash = hash_token_key(key)
        now = timezone.now()
        generation = accessgen.current()
        cached = token_checks.get(key_hash, generation)
        token: ApiToken | None
        if cached is not None:
            token = _fresh_copy(cached)
        else:
            token = (
                ApiToken.objects.select_related("user", "user__profile")
                .filter(key_hash=key_hash)
                .first()
            )
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            raise exceptions.AuthenticationFailed(
                "The request you have made requires authentication."
            )
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is disabled.")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            touch_last_used(token, now)
        if cached is None and generation is not None:
            token_checks.put(
                key_hash,
                _Check(
                    token=_fresh_copy_of(token),
                    project_ids=member_project_ids(token.user),
                    generation=generation,
                    checked_at=time.monotonic(),
                ),
            )
        elif cached is not None and token.last_used_at != cached.token.last_used_at:
            # The note was written: later requests need not write it again for a minute.
            token_checks.put(key_hash, _Check(
                token=_fresh_copy_of(token), project_ids=cached.project_ids,
                generation=cached.generation, checked_at=cached.checked_at,
            ))  # fmt: skip
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        # A 401 (not 403) when no credentials were sent, as Keystone does.
        return 'Keystone uri="/networking"'


def _fresh_copy_of(token: ApiToken) -> ApiToken:
    """A copy of the token and its user (with the profile) that no request holds: requests
    may set attributes on request.user (per-request caches)."""
    user = copy.copy(token.user)
    fresh = copy.copy(token)
    fresh.user = user
    return fresh


def _fresh_copy(check: _Check) -> ApiToken:
    token = _fresh_copy_of(check.token)
    # The memberships read with the token, as `member_project_ids` caches them per request.
    remember_project_ids(token.user, check.project_ids)
    return token
