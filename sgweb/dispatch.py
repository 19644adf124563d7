"""The one place that tells the outside world about committed changes: host agents and browsers.

Actions (the only writers) call these inside their transaction; nothing leaves before the
transaction commits, so a change that was rolled back is never announced.

- `firewall_changed`: the change alters what some hosts' firewalls must hold. It says so in its
  own words (hosts named directly, groups whose rules changed, groups whose members changed);
  the host-sync hook (installed by `sgweb.hostsync`) turns that into host names while the
  transaction still sees the rows, writes the intent to publish them in the same transaction
  (the outbox, so a process killed after the commit loses nothing), and publishes after commit.
  Work wrapped in `publish_once` publishes each host once, however many changes it made (a
  bulk create of 600 rules is one publish, not 600).
- `send_event`: a live event for browsers, of one of the kinds in `EventKind` (declared here,
  once; `sgweb.live.events` turns each into protocol messages for the websockets). `scope` names
  who may receive it: "global", "project:<project id hex>", "host:<name>", "trace:<id>" or
  "user:<id>" (that user's own sockets). Work wrapped in `coalesce_changes` sends its `change`
  events as one `changes` event per scope (a bulk create of 600 rules is one send, not 600).
- `send_host_task`: a one-off task for one host's agent (a trace proof).
- `network_nodes_changed`: the change alters what some network nodes' routers must hold (a
  router, its interfaces, or the firewall groups on them); after commit the installed
  `NetworkNodeSender` (the agent path of issue 16) publishes each node's new `NetworkNodeState`.
- `tracking_delivery`: what the firewall changes made inside a block were sent to (each host
  and the revision that carries them; each network node and the router revision that carries
  them), so the page the change was made on can follow it.

This module sits at the base of the house: it imports no app. The apps above install the
senders (`install_host_sync`, `install_event_sender`) when Django starts.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from django.db import transaction

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    """Every live event the control plane sends; each is delivered to at least one websocket."""

    # An audited change of a project's objects (written by `sgweb.audit.record`): the overview's
    # recent changes and the group page of the group it touches.
    CHANGE = "change"
    # Many audited changes of one request in one scope (`coalesce_changes`: a bulk API create),
    # sent once so the request pays for one send, not one per object; the pages draw them once.
    CHANGES = "changes"
    # A host's agent applied (or failed to apply) a revision / found and repaired drift.
    HOST_APPLY = "host.apply"
    HOST_DRIFT = "host.drift"
    # A network node's agent applied (or refused) a router state revision (issue 16): the
    # firewall pages follow their changes to the node with it.
    ROUTER_APPLY = "router.apply"
    # A trace's kernel proof: one packet's path, then the result.
    TRACE_PACKET = "trace-packet"
    TRACE_RESULT = "trace-result"
    # A user's access may have changed (membership, role, deactivation, password, logout):
    # every live socket of theirs checks it again and closes or narrows what it relays.
    ACCESS_CHANGED = "access.changed"
    # Logged flows of one project's ports, new or grown (`sgweb.droplog.actions.record`): the
    # drops pages and the overview's drop list of those who may see the project.
    DROP_FLOWS = "drop-flows"


@dataclass(frozen=True, slots=True)
class FirewallChange:
    """What a change did to the hosts' firewalls, in the change's own words."""

    reason: str
    # Hosts named directly: anything about their ports changed (a port bound, unbound or
    # edited there, its DHCP servers, its packet logging). Only these hosts' ports are read
    # again; for the others a change of `groups` / `members_of` touches groups alone.
    hosts: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()  # groups whose rules changed: every host using them
    members_of: frozenset[str] = frozenset()  # groups whose members changed: hosts naming them


class HostSync(Protocol):
    def affected_hosts(self, change: FirewallChange) -> set[str]:
        """The hosts the change reaches, read inside the change's transaction."""

    def changed(self, hosts: set[str], reason: str) -> dict[str, int]:
        """Inside the transaction: write the intent to publish these hosts (the outbox);
        returns host -> the receipt (intent id) that `publish` clears once it has published."""

    def publish(self, receipts: dict[str, list[int]], reason: str) -> Mapping[str, int] | None:
        """After commit: publish the hosts' new desired state and nudge their agents; say which
        revision of each host carries the change where that is known already."""


@dataclass
class Delivery:
    """Where the firewall changes made inside `tracking_delivery` went: every host they reach
    and the revision of that host's state that carries them (None while it is not known: the
    host's publishing was handed to the control worker or could not reach Redis). `nodes` is
    the same for network nodes' router states, numbered by a counter of their own."""

    at: float = field(default_factory=time.time)
    hosts: dict[str, int | None] = field(default_factory=dict)
    nodes: dict[str, int | None] = field(default_factory=dict)

    def reached(self, names: Iterable[str]) -> None:
        for name in names:
            self.hosts.setdefault(name, None)

    def published(self, revisions: Mapping[str, int] | None) -> None:
        for name, revision in (revisions or {}).items():
            if revision and revision > (self.hosts.get(name) or 0):
                self.hosts[name] = revision

    def nodes_reached(self, names: Iterable[str]) -> None:
        for name in names:
            self.nodes.setdefault(name, None)

    def nodes_published(self, revisions: Mapping[str, int] | None) -> None:
        for name, revision in (revisions or {}).items():
            if revision and revision > (self.nodes.get(name) or 0):
                self.nodes[name] = revision


_delivery: ContextVar[Delivery | None] = ContextVar("sgweb_delivery", default=None)


@contextlib.contextmanager
def tracking_delivery() -> Iterator[Delivery]:
    """Collect the hosts (and revisions) of the changes committed inside the block."""
    delivery = Delivery()
    token = _delivery.set(delivery)
    try:
        yield delivery
    finally:
        _delivery.reset(token)


EventSender = Callable[[str, dict[str, Any], str], None]
HostTaskSender = Callable[[str, str, dict[str, Any]], None]
# After commit: publish these network nodes' router state (host names), for this reason; say
# which router revision of each node carries the change where that is known.
NetworkNodeSender = Callable[[frozenset[str], str], Mapping[str, int] | None]

_host_sync: HostSync | None = None
_event_sender: EventSender | None = None
_host_task_sender: HostTaskSender | None = None
_network_node_sender: NetworkNodeSender | None = None


def install_host_sync(hook: HostSync | None, task_sender: HostTaskSender | None = None) -> None:
    global _host_sync, _host_task_sender
    _host_sync = hook
    _host_task_sender = task_sender


def install_network_node_sender(sender: NetworkNodeSender | None) -> None:
    global _network_node_sender
    _network_node_sender = sender


def network_nodes_changed(reason: str, *, hosts: Iterable[str | None]) -> frozenset[str]:
    """Inside an action's transaction: these network nodes' routers change; after commit the
    installed sender publishes them. Routers not scheduled on a node (None) reach nothing."""
    names = frozenset(host for host in hosts if host)
    if not names:
        return names
    delivery = _delivery.get()
    if delivery is not None:
        delivery.nodes_reached(names)

    def send() -> None:
        if delivery is not None:
            delivery.at = time.time()  # committed now: the change travels from here
        sender = _network_node_sender
        if sender is None:
            log.debug("network nodes %s changed (%s): no sender installed", sorted(names), reason)
            return
        try:
            revisions = sender(names, reason[:200])
        except Exception:  # a broker outage must not turn a committed change into a 500
            log.exception("could not publish network nodes %s (%s)", sorted(names), reason)
            return
        if delivery is not None:
            delivery.nodes_published(revisions)

    transaction.on_commit(send)
    return names


def install_event_sender(sender: EventSender | None) -> None:
    global _event_sender
    _event_sender = sender


def _ids(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(value) for value in values if value)


def firewall_changed(
    reason: str,
    *,
    hosts: Iterable[str] = (),
    groups: Iterable[Any] = (),
    members_of: Iterable[Any] = (),
) -> set[str]:
    """Inside an action's transaction: these hosts' firewalls change; publish after commit."""
    change = FirewallChange(
        reason[:200], frozenset(h for h in hosts if h), _ids(groups), _ids(members_of)
    )
    hook = _host_sync
    if hook is None:
        names = set(change.hosts)
        log.debug("firewall change (%s) for %s: no host sync installed", reason, names)
        return names
    names = hook.affected_hosts(change)
    if not names:
        return names
    delivery = _delivery.get()
    if delivery is not None:
        delivery.reached(names)
    batch = _batch.get()
    if batch is not None and batch.hook is hook:
        batch.add(names, change.reason)
    else:
        receipts = {host: [receipt] for host, receipt in hook.changed(names, change.reason).items()}
        transaction.on_commit(lambda: _publish(hook, receipts, change.reason, delivery))
    return names


def _publish(
    hook: HostSync, receipts: dict[str, list[int]], reason: str, delivery: Delivery | None = None
) -> None:
    if delivery is not None:
        delivery.at = time.time()  # committed now: the change travels from here
    try:
        revisions = hook.publish(receipts, reason)
    except Exception:  # a broker outage must not turn a committed change into a 500
        log.exception("could not publish hosts %s (%s)", sorted(receipts), reason)
        return
    if delivery is not None:
        delivery.published(revisions)


class _PublishBatch:
    """The hosts that many changes of one request reach: each host's intent is written once and
    the publish after commit happens once, whatever the number of changes."""

    def __init__(self, hook: HostSync) -> None:
        self.hook = hook
        self.receipts: dict[str, list[int]] = {}
        self.first_reason = ""
        self.more_reasons = 0

    def add(self, names: set[str], reason: str) -> None:
        if not self.first_reason:
            self.first_reason = reason
        elif reason != self.first_reason:
            self.more_reasons += 1
        new = names - set(self.receipts)
        if new:
            for host, receipt in self.hook.changed(new, reason).items():
                self.receipts.setdefault(host, []).append(receipt)

    @property
    def reason(self) -> str:
        first, more = self.first_reason, self.more_reasons
        return (f"{first} (and {more} more changes)" if more else first)[:200]


_batch: ContextVar[_PublishBatch | None] = ContextVar("sgweb_publish_batch", default=None)


@contextlib.contextmanager
def publish_once() -> Iterator[None]:
    """Every firewall change made inside joins one batch, published once after the commit.

    For requests that make many changes in one transaction (a bulk create of 600 rules): use it
    inside the transaction (`with transaction.atomic(), dispatch.publish_once(): ...`). Without
    it, each change publishes its own hosts after commit (each is still durable on its own).
    """
    hook = _host_sync
    if hook is None or _batch.get() is not None:
        yield
        return
    batch = _PublishBatch(hook)
    token = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(token)
    if batch.receipts:  # not reached when the work raised: its transaction is rolled back
        receipts, delivery = batch.receipts, _delivery.get()
        transaction.on_commit(lambda: _publish(hook, receipts, batch.reason, delivery))


def send_event(kind: EventKind, payload: dict[str, Any], *, scope: str = "global") -> None:
    """Send a live event now (callers inside a transaction use `send_event_on_commit`)."""
    sender = _event_sender
    if sender is None:
        return
    try:
        sender(str(kind), payload, scope)
    except Exception:
        log.exception("could not send live event %s to %s", kind, scope)


def send_event_on_commit(kind: EventKind, payload: dict[str, Any], *, scope: str) -> None:
    pending = _changes.get()
    if kind == EventKind.CHANGE and pending is not None:
        pending.setdefault(scope, []).append(payload)
        return
    transaction.on_commit(lambda: send_event(kind, payload, scope=scope))


_changes: ContextVar[dict[str, list[dict[str, Any]]] | None] = ContextVar(
    "sgweb_coalesced_changes", default=None
)


def changes_message(changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The `changes` message of the live protocol: one scope's changes, in the order made."""
    return {"type": "changes", "project_id": changes[0].get("project_id"), "changes": changes}


def _send_changes(pending: dict[str, list[dict[str, Any]]]) -> None:
    for scope, changes in pending.items():
        if len(changes) == 1:  # a lone change goes as it always did
            send_event(EventKind.CHANGE, changes[0], scope=scope)
        else:
            send_event(EventKind.CHANGES, changes_message(changes), scope=scope)


@contextlib.contextmanager
def coalesce_changes() -> Iterator[None]:
    """Every `change` event sent inside goes out after the commit as one `changes` event per
    scope (a lone change as itself). Use it inside the transaction, like `publish_once`."""
    if _changes.get() is not None:
        yield
        return
    pending: dict[str, list[dict[str, Any]]] = {}
    token = _changes.set(pending)
    try:
        yield
    finally:
        _changes.reset(token)
    if pending:  # not reached when the work raised: its transaction is rolled back
        transaction.on_commit(lambda: _send_changes(pending))


def project_scope(project_id: Any) -> str:
    return f"project:{uuid.UUID(str(project_id)).hex}"


def user_scope(user_id: Any) -> str:
    return f"user:{int(user_id)}"


def send_host_task(host: str, task: str, kwargs: dict[str, Any]) -> bool:
    """A one-off task for one host's agent; False if it could not go."""
    sender = _host_task_sender
    if sender is None:
        log.warning("no host task sender installed: %s for %s not sent", task, host)
        return False
    try:
        sender(host, task, kwargs)
    except Exception:
        log.exception("could not send %s to host %s", task, host)
        return False
    return True
