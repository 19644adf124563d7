"""The agent's side of Redis: read the newest desired state, write heartbeats and reports."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import redis

from sgweb.wire import sync as protocol


class DesiredStore(Protocol):
    def desired_revision(self) -> int | None: ...

    def fetch(self) -> protocol.Desired | None: ...

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None: ...

    def set_applied(self, report: dict[str, Any]) -> None: ...

    def clear_heartbeat(self) -> None: ...


class RedisStore:
    def __init__(self, url: str, host: str, prefix: str) -> None:
        self.keys = protocol.host_keys(host, prefix)
        # Bounded timeouts: a Redis restart must not hang an agent thread forever.
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )

    def desired_revision(self) -> int | None:
        value = self.client.get(self.keys.desired_revision)
        return int(value) if value is not None else None

    def fetch(self) -> protocol.Desired | None:
        raw = self.client.get(self.keys.desired)
        return protocol.parse_desired(raw) if raw is not None else None

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None:
        payload = {**payload, "at": time.time()}
        self.client.set(self.keys.heartbeat, json.dumps(payload, sort_keys=True), ex=ttl_s)

    def set_applied(self, report: dict[str, Any]) -> None:
        self.client.set(self.keys.applied, json.dumps(report, sort_keys=True))

    def clear_heartbeat(self) -> None:
        self.client.delete(self.keys.heartbeat)

    def set_applied_state(self, state: dict[str, Any]) -> None:
        self.client.set(self.keys.applied_state, json.dumps(state, sort_keys=True))

    def applied_state(self) -> dict[str, Any] | None:
        raw = self.client.get(self.keys.applied_state)
        return json.loads(raw) if raw is not None else None
