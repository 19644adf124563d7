"""Is a host's agent alive, and what does it say it applied? Read from Redis heartbeats.

The agent refreshes ``P:host:NAME:heartbeat`` every HEARTBEAT_INTERVAL_S with a TTL of
HEARTBEAT_TTL_S, so a key that exists means "alive"; its JSON says what the agent has applied.
The dashboard reads this (one MGET for a whole page of hosts) rather than the database, which
would need a write per host every couple of seconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from sgweb.hostsync.channel import SyncChannel, channel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Liveness:
    host: str
    alive: bool
    last_seen: float | None = None  # unix time of the last heartbeat
    age_s: float | None = None
    applied_revision: int | None = None
    applied_digest: str | None = None
    agent_status: str | None = None  # "in-sync" | "failed" | "syncing" as the agent sees itself
    pid: int | None = None
    netns: str | None = None
    error: str | None = None  # set when Redis could not be asked
    detail: dict[str, Any] = field(default_factory=dict)


def host_liveness(names: Iterable[str], *, via: SyncChannel | None = None) -> dict[str, Liveness]:
    """name -> Liveness for every name; Redis trouble gives alive=False with the error."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    via = via or channel()
    try:
        values = via.redis.mget([via.keys(name).heartbeat for name in names])
    except (redis.RedisError, OSError) as exc:
        log.warning("heartbeats unavailable: %s", exc)
        return {name: Liveness(name, False, error=str(exc)) for name in names}
    now = time.time()
    result = {}
    for name, raw in zip(names, values, strict=True):
        if raw is None:
            result[name] = Liveness(name, False)
            continue
        try:
            beat = json.loads(raw)
        except ValueError:
            result[name] = Liveness(name, False, error="unreadable heartbeat")
            continue
        at = float(beat.get("at") or 0.0)
        result[name] = Liveness(
            host=name,
            alive=True,
            last_seen=at,
            age_s=max(0.0, now - at),
            applied_revision=beat.get("applied_revision"),
            applied_digest=beat.get("applied_digest"),
            agent_status=beat.get("status"),
            pid=beat.get("pid"),
            netns=beat.get("netns"),
            detail=beat,
        )
    return result


def desired_revisions(
    names: Iterable[str], *, via: SyncChannel | None = None
) -> dict[str, int | None]:
    """name -> the newest revision stored in Redis (None: nothing stored, e.g. Redis restarted)."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    via = via or channel()
    values = via.redis.mget([via.keys(name).desired_revision for name in names])
    return {
        name: (int(value) if value is not None else None)
        for name, value in zip(names, values, strict=True)
    }
