"""The access generation: a value in Redis that changes whenever any user's access may have
changed (a token created or revoked, a user changed or deactivated, a role or membership
changed), so that server processes may keep what a token check found and still honour a
revocation made in another process on the very next request.

A new random value on every change (not a counter): a Redis that lost its keys (a flush, a
restart) can never hand back a value an old cache entry was made under. When Redis cannot be
read, `current()` says None and callers do not cache; a failed read is not retried for a few
seconds, so a dead Redis costs a request nothing.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings

log = logging.getLogger(__name__)

# After Redis failed, requests skip it (and do not cache) for this long.
RETRY_AFTER_S = 5.0

_lock = threading.Lock()
_client: redis.Redis[bytes] | None = None
_down_until = 0.0
# Called in this process as soon as access changes (before commit, conservatively).
_local_listeners: list[Callable[[], None]] = []


def _key() -> str:
    return f"{settings.SGWEB_KEY_PREFIX}:access-generation"


def _redis() -> redis.Redis[bytes]:
    global _client
    with _lock:
        if _client is None:
            # Timeouts far below a request's budget: the value is an optimisation.
            _client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=0.25, socket_connect_timeout=0.25
            )
        return _client


def current() -> bytes | None:
    """The generation now; None when Redis cannot say (then nothing may be cached)."""
    global _down_until
    if time.monotonic() < _down_until:
        return None
    try:
        value = _redis().get(_key())
    except (redis.RedisError, OSError):
        _down_until = time.monotonic() + RETRY_AFTER_S
        return None
    # No key yet (or lost): start one, so that there is something to compare with.
    return value if value is not None else bump()


def bump() -> bytes | None:
    global _down_until
    value = secrets.token_hex(8).encode()
    try:
        _redis().set(_key(), value)
    except (redis.RedisError, OSError) as exc:
        _down_until = time.monotonic() + RETRY_AFTER_S
        log.warning("access generation not bumped (%s): other processes' token caches "
                    "expire on their own", exc)  # fmt: skip
        return None
    return value


def on_local_change(listener: Callable[[], None]) -> None:
    _local_listeners.append(listener)


def changed() -> None:
    """Access may have changed: forget it here now, and everywhere once the change commits."""
    from django.db import transaction

    for listener in _local_listeners:
        listener()

    def after_commit() -> None:
        bump()
        for listener in _local_listeners:
            listener()

    transaction.on_commit(after_commit)
