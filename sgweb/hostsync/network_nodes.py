"""Network nodes' router state, from a committed change to the agents (issue 16).

`dispatch.network_nodes_changed` names the nodes a router or firewall change reaches; the sender
installed here builds each node's `NetworkNodeState` from the database after the commit and
publishes it (`routers_publish.publish_network_node`). What a lost publish (a process killed
after the commit, Redis away) leaves behind, the reconciler repairs: every round it compares
each network node's state built from the database with the digest stored in Redis and the one
the agent reported applying, republishes or nudges (`check_network_nodes`). So the router path
needs no outbox of its own: a change is in the database, and the database is what gets compared.

The agents' apply reports reach fwaas (`sgweb.fwaas.status`), which keeps each node's last one
for its groups' status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import Q

from sgweb import dispatch
from sgweb.firewall.fwaas import codec
from sgweb.fwaas import status as fwaas_status
from sgweb.fwaas.desired_state import network_node_state
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.routers_publish import (
    RouterPublishResult,
    applied_report,
    publish_network_node,
    router_apply_listeners,
)
from sgweb.networks.models import Host
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)


def publish_nodes(
    names: Iterable[str], reason: str, *, via: SyncChannel | None = None
) -> dict[str, RouterPublishResult]:
    """Build and publish each node's router state; one node failing does not stop the others
    (the reconciler publishes it next round)."""
    if not settings.SGWEB_PUBLISH_TO_HOSTS:
        return {}
    via = via or channel()
    done = {}
    for name in sorted(set(names)):
        try:
            done[name] = publish_network_node(name, network_node_state(name), reason, via=via)
        except Exception:
            log.exception("could not publish network node %s (%s)", name, reason)
    return done


def _send(names: frozenset[str], reason: str) -> dict[str, int]:
    """The node -> router revision that carries the change (a page follows it there)."""
    return {name: result.revision for name, result in publish_nodes(names, reason).items()}


def stored_router_revision(name: str, *, via: SyncChannel | None = None) -> int:
    """The revision of the newest router state stored for `name` (0: none)."""
    via = via or channel()
    raw = via.redis.get(wire.router_keys(name, via.prefix).desired_revision)
    return int(raw or 0)


def network_node_names() -> list[str]:
    """Hosts with the network-node role, and any host a router is scheduled on."""
    return list(
        Host.objects.filter(Q(network_node=True) | Q(routers__isnull=False))
        .distinct()
        .order_by("name")
        .values_list("name", flat=True)
    )


def check_network_nodes(via: SyncChannel) -> dict[str, str]:
    """The reconciler's round for routers: node -> what was done ("published", "nudged")."""
    done: dict[str, str] = {}
    for name in network_node_names():
        try:
            action = _check_one(name, via)
        except Exception:
            log.exception("reconcile: could not check network node %r", name)
            continue
        if action:
            done[name] = action
    return done


def _check_one(name: str, via: SyncChannel) -> str:
    state = network_node_state(name)  # built once: for the digest and, if it differs, to publish
    digest = codec.digest(codec.dumps(state))
    keys = wire.router_keys(name, via.prefix)
    raw = via.redis.get(keys.desired_digest)
    stored = raw.decode() if isinstance(raw, bytes) else raw
    if stored != digest:
        publish_network_node(name, state, "reconcile: router state differs", via=via)
        return "published"
    report = applied_report(name, via=via) or {}
    if report.get("digest") == digest:
        return ""
    if not via.redis.exists(protocol.host_keys(name, via.prefix).heartbeat):
        return ""  # a node that is down reads the newest state when it starts
    revision = via.redis.get(keys.desired_revision)
    if not report.get("ok") and str(report.get("revision")) == str(int(revision or 0)):
        return ""  # it refused this very state; it retries by itself, the group shows ERROR
    via.send(
        wire.TASK_ROUTER_SYNC,
        {"revision": int(revision or 0), "reason": "reconcile: agent applied another state"},
        protocol.host_queue(name),
    )
    return "nudged"


def announce_router_apply(report: dict[str, Any]) -> None:
    """Tell the browsers following a firewall change that a node applied (or refused) it."""
    if report.get("host"):
        dispatch.send_event(dispatch.EventKind.ROUTER_APPLY, dict(report), scope="global")


def install() -> None:
    dispatch.install_network_node_sender(_send)
    # Recorded first, announced second: a page drawn after the announcement reads the record.
    for listener in (fwaas_status.record_router_apply, announce_router_apply):
        if listener not in router_apply_listeners:
            router_apply_listeners.append(listener)
