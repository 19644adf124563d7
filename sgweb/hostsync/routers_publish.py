"""Publishing a network node's router state (issue 16): what fwaas's dispatch calls after commit.

The port path's publish (`sgweb.hostsync.publish`) for routers, minus the database: the caller
builds the `NetworkNodeState` (sgweb/fwaas/desired_state.py) and hands it over; here it gets the
host's next router revision, is stored unless a newer revision is stored already, and the host's
agent is nudged on its router channel (`wire.RouterKeys.nudge`, one PUBLISH). The revision is
taken before the caller's state is stored, and the store is conditional, so publishers racing on
several web servers never let an older state overwrite a newer one (see `sgweb.wire.sync`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sgweb.firewall.fwaas import codec
from sgweb.firewall.fwaas.model import NetworkNodeState
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

STORED = 1
OLDER = 0
UNCHANGED = -1


@dataclass(frozen=True, slots=True)
class RouterPublishResult:
    host: str
    revision: int  # the revision the agent was told about
    digest: str
    outcome: int  # STORED | OLDER | UNCHANGED


def publish_network_node(
    host: str, state: NetworkNodeState, reason: str = "", *, via: SyncChannel | None = None
) -> RouterPublishResult:
    """Store `state` as `host`'s newest router state and nudge its agent; raises Redis
    errors to the caller (who keeps its own intent to retry, as the port path does)."""
    if state.host != host:
        raise ValueError(f"a router state for {state.host!r} cannot be published to {host!r}")
    via = via or channel()
    keys = wire.router_keys(host, via.prefix)
    client = via.redis
    floor = _applied_floor(via, keys)
    revision = int(client.eval(wire.NEXT_REVISION_LUA, 1, keys.revision, floor))
    text = codec.dumps(state)
    digest = codec.digest(text)
    document = wire.desired_document(revision, digest, text, time.time())
    outcome = int(
        client.eval(
            wire.STORE_DESIRED_LUA, 3, keys.desired, keys.desired_revision, keys.desired_digest,
            revision, document, digest, "0",
        )
    )  # fmt: skip
    told = revision
    if outcome != STORED:
        stored = client.get(keys.desired_revision)
        told = int(stored or revision)
    # Nudged even when nothing new was stored: a lost nudge must not strand the agent. One
    # PUBLISH on the node's channel (a Celery task was ~1 KB through the broker and a worker
    # round trip); nobody listening costs nothing, so no liveness is read first.
    heard = client.publish(keys.nudge, protocol.nudge_message(told))
    log.debug("router revision %s of %s (%s): %s agent(s) nudged", told, host, reason, heard)
    return RouterPublishResult(host, told, digest, outcome)


def _applied_floor(via: SyncChannel, keys: wire.RouterKeys) -> int:
    """A Redis that lost its counter but kept (or got back) the agent's report must not number
    a new state below what the agent applied: the agent would skip it as old."""
    raw = via.redis.get(keys.applied)
    try:
        return int(json.loads(raw).get("revision") or 0) if raw else 0
    except (ValueError, TypeError, AttributeError):
        return 0


def applied_report(host: str, *, via: SyncChannel | None = None) -> dict[str, Any] | None:
    """The agent's last router apply report for `host` (None before its first)."""
    via = via or channel()
    raw = via.redis.get(wire.router_keys(host, via.prefix).applied)
    return json.loads(raw) if raw else None


# Who wants to hear about router applies (fwaas sets its groups' status from them). The report
# is stored in Redis by the agent as well, so a listener that misses one reads it there.
router_apply_listeners: list[Callable[[dict[str, Any]], None]] = []


def record_router_apply(report: dict[str, Any]) -> None:
    """The control worker's handler of `wire.TASK_RECORD_ROUTER_APPLY`."""
    if not report.get("ok"):
        log.warning(
            "router apply on %s failed at revision %s: %s",
            report.get("host"), report.get("revision"), report.get("error"),
        )  # fmt: skip
    for listener in list(router_apply_listeners):
        try:
            listener(report)
        except Exception:
            log.exception("router apply listener %r failed", listener)


def watch_rule_hits(host: str, *, via: SyncChannel | None = None) -> dict[str, Any] | None:
    """Tell `host`'s agent a browser watches its routers' counters (for `wire.WATCH_TTL_S`) and
    return the agent's latest counters (`wire.hits_document`), None before its first reading."""
    via = via or channel()
    keys = wire.router_keys(host, via.prefix)
    via.redis.set(keys.watched, "1", ex=wire.WATCH_TTL_S)
    raw = via.redis.get(keys.hits)
    return json.loads(raw) if raw else None
