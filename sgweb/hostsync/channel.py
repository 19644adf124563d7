"""The control plane's connection to the agents: Redis for state, the Celery broker for nudges.

One `SyncChannel` per process, built from settings (`SGWEB_SYNC_REDIS_URL`, `CELERY_BROKER_URL`,
`SGWEB_KEY_PREFIX`, `SGWEB_CONTROL_QUEUE`). Tests swap it with `use_channel(...)` to
point everything at a Redis database and key prefix of their own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from django.conf import settings

from sgweb.wire import sync as protocol


@dataclass
class SyncChannel:
    redis_url: str
    broker_url: str
    prefix: str = protocol.DEFAULT_KEY_PREFIX
    control_queue: str = protocol.DEFAULT_CONTROL_QUEUE
    _redis: redis.Redis[bytes] | None = field(default=None, repr=False)
    _celery: Celery | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def redis(self) -> redis.Redis[bytes]:
        if self._redis is None:
            # Short timeouts: a publish runs inside a web request; a dead Redis must fail fast
            # (the host goes into the backlog) rather than hang the request.
            self._redis = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        return self._redis

    @property
    def celery(self) -> Celery:
        with self._lock:
            if self._celery is None:
                app = Celery("sgweb-hostsync", broker=self.broker_url, set_as_current=False)
                app.conf.update(
                    task_serializer="json",
                    accept_content=["json"],
                    broker_connection_retry_on_startup=True,
                    # Publishing must not block a request for long when the broker is down.
                    broker_transport_options={"socket_timeout": 2, "socket_connect_timeout": 2},
                    task_publish_retry_policy={"max_retries": 1, "interval_start": 0.1},
                )
                self._celery = app
            return self._celery

    def keys(self, host: str) -> protocol.HostKeys:
        return protocol.host_keys(host, self.prefix)

    def send(self, task: str, kwargs: dict[str, Any], queue: str) -> None:
        self.celery.send_task(task, kwargs=kwargs, queue=queue)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        if self._celery is not None:
            self._celery.close()
            self._celery = None


_current: SyncChannel | None = None


def channel() -> SyncChannel:
    global _current
    if _current is None:
        _current = SyncChannel(
            redis_url=settings.SGWEB_SYNC_REDIS_URL,
            broker_url=settings.CELERY_BROKER_URL,
            prefix=settings.SGWEB_KEY_PREFIX,
            control_queue=settings.SGWEB_CONTROL_QUEUE,
        )
    return _current


@contextlib.contextmanager
def use_channel(replacement: SyncChannel) -> Iterator[SyncChannel]:
    """Point the control plane's synchronisation at another Redis / prefix for a while."""
    global _current
    previous = _current
    _current = replacement
    try:
        yield replacement
    finally:
        replacement.close()
        _current = previous
