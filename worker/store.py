"""The agent's side of Redis: read the newest desired state, write heartbeats and reports.

A desired document may be a manifest (`sgweb.firewall.manifest`): the store keeps the pieces
of the state it last read, by id, fetches the ones it lacks in one MGET, checks each against
its id and the manifest against the document's digest, and hands the agent the assembled
state. A rule change to a group used everywhere thus costs each agent the small manifest and
that one group's piece, not the whole state.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Protocol

import redis

from sgweb.firewall import codec, manifest
from sgweb.wire import sync as protocol


class PieceCache:
    """The shared pieces of the states an agent read last, decoded, by (kind, id)."""

    def __init__(self) -> None:
        self.pieces: dict[tuple[str, str], Any] = {}
        self.fetched = 0  # pieces read from Redis (for benchmarks and tests)
        self.decode = manifest.decode_piece  # replaceable (bench.fanout shares decoded pieces)

    def resolve(
        self, client: redis.Redis[bytes], prefix: str, data: dict[str, Any]
    ) -> dict[tuple[str, str], Any]:
        """The pieces `data` (a manifest) names; raises CodecError if one is gone or bad."""
        wanted = manifest.refs(data)
        missing = sorted({ref for ref in wanted if ref not in self.pieces})
        found = dict((ref, self.pieces[ref]) for ref in wanted if ref in self.pieces)
        if missing:
            texts = client.mget([protocol.shared_key(prefix, kind, h) for kind, h in missing])
            for (kind, h), text in zip(missing, texts, strict=True):
                if text is None:
                    raise codec.CodecError(f"shared {kind} piece {h[:12]} is gone from Redis")
                found[(kind, h)] = self.decode(kind, text, h)
            self.fetched += len(missing)
        # Keep what this state names: the next change usually shares most of it.
        self.pieces = found
        return found


def assemble_desired(
    desired: protocol.Desired, client: redis.Redis[bytes], prefix: str, cache: PieceCache
) -> protocol.Desired:
    """`desired` with its state assembled, if it is a manifest; as it is otherwise."""
    if not manifest.is_manifest(desired.state):
        return desired
    # The manifest was stored as canonical JSON: written again, it is the text the digest names.
    if manifest.text_digest(manifest.canonical_text(desired.state)) != desired.digest:
        raise codec.CodecError("digest does not match the manifest (corrupted document)")
    state = manifest.assemble(desired.state, cache.resolve(client, prefix, desired.state))
    return dataclasses.replace(desired, assembled=state)


class DesiredStore(Protocol):
    def desired_revision(self) -> int | None: ...

    def fetch(self) -> protocol.Desired | None: ...

    def beat(self, payload: dict[str, Any], ttl_s: int) -> None: ...

    def set_applied(self, report: dict[str, Any]) -> None: ...

    def clear_heartbeat(self) -> None: ...


class RedisStore:
    def __init__(self, url: str, host: str, prefix: str) -> None:
        self.keys = protocol.host_keys(host, prefix)
        self.prefix = prefix
        self.cache = PieceCache()
        # Bounded timeouts: a Redis restart must not hang an agent thread forever.
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )

    def desired_revision(self) -> int | None:
        value = self.client.get(self.keys.desired_revision)
        return int(value) if value is not None else None

    def fetch(self) -> protocol.Desired | None:
        raw = self.client.get(self.keys.desired)
        if raw is None:
            return None
        desired = protocol.parse_desired(raw)
        try:
            return assemble_desired(desired, self.client, self.prefix, self.cache)
        except codec.CodecError:
            # A piece expired or is damaged: the agent's decode refuses the manifest and asks
            # for a publish, which stores every piece again.
            return desired

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
        if raw is None:
            return None
        data = json.loads(raw)
        if not manifest.is_manifest(data):
            return dict(data)
        # The applied state is kept as its manifest (small); a cache of its own, so reading it
        # at start-up does not disturb the pieces of the newest state.
        pieces = PieceCache().resolve(self.client, self.prefix, data)
        return codec.to_dict(manifest.assemble(data, pieces))
