"""Publishing a host's desired state: what `sgweb.dispatch.firewall_changed` calls after commit.

Per host: take the next revision from Redis (one counter per host, so several web servers agree),
then build the state from the database, store it with its digest unless a newer revision is
already stored, and send the host's agent a tiny `sgweb.agent.sync` task naming the revision.

Why the revision is taken *before* reading the database: a publisher that reads later gets a
higher number, and it read after every commit that preceded its INCR, so the highest revision
always carries the newest state; the store is conditional (Lua), so an older revision never
overwrites a newer one however the publishers interleave. The agent always fetches the newest
stored state, so a burst of tasks coalesces into one apply plus cheap no-ops.

Durability: a change writes a `PublishIntent` per host in its own transaction (`changed`); the
publisher deletes exactly the intents it was given once the host's state is stored, so a process
killed between commit and publish leaves its intents for the reconciler. Each host is published
on its own: whatever one host's trouble (a dead agent, a state that cannot be built, Redis
refusing its key), the others are published and the failing host keeps its intent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Greatest

from sgweb import dispatch
from sgweb.dispatch import FirewallChange
from sgweb.firewall import codec
from sgweb.firewall.model import HostState
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.desired_state import host_state
from sgweb.hostsync.impact import hosts_referencing_groups, hosts_using_groups
from sgweb.hostsync.models import PublishIntent
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host, Port
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

STORED = 1
OLDER = 0
UNCHANGED = -1


@dataclass(frozen=True, slots=True)
class PublishResult:
    host: str
    revision: int  # the revision the agent was told about
    digest: str
    outcome: int  # STORED | OLDER | UNCHANGED
    build_ms: float
    error: str = ""


def _default_builder(host_name: str) -> HostState:
    return host_state(host_name)


# Replaceable by tests that publish a hand-made state.
state_builder: Callable[[str], HostState] = _default_builder


def _revision_floor(host_name: str, via: SyncChannel) -> int:
    """The lowest revision the next one may be: above anything the database recorded and above
    what the agent says it applied, so that a Redis that lost its counter cannot number a new
    state below one the agent has (the agent would skip it as old)."""
    recorded = Host.objects.filter(name=host_name).values_list(
        Greatest("desired_revision", "applied_revision"), flat=True
    )
    floor = int(next(iter(recorded), 0) or 0)
    beat = via.redis.get(via.keys(host_name).heartbeat)
    if beat:
        with contextlib.suppress(ValueError, TypeError, AttributeError):  # an odd beat: no floor
            floor = max(floor, int(json.loads(beat).get("applied_revision") or 0))
    return floor


def publish_host(
    host_name: str, reason: str = "", *, via: SyncChannel | None = None, force: bool = False
) -> PublishResult:
    """Publish one host's desired state now; raises redis/kombu errors to the caller.

    `force`: store it under a new revision even if the same state is stored (see the Lua)."""
    via = via or channel()
    keys = via.keys(host_name)
    client = via.redis
    floor = _revision_floor(host_name, via)
    revision = int(client.eval(protocol.NEXT_REVISION_LUA, 1, keys.revision, floor))
    # Ports changed since the last publish are carried from this revision on (their status
    # turns ACTIVE when the agent reports it). Marked before the state is read: a port change
    # committed after this line stays unmarked and is carried by its own, later publish.
    Port.objects.filter(host__name=host_name, host_revision__isnull=True).update(
        host_revision=revision
    )

    started = time.perf_counter()
    state = state_builder(host_name)
    text = codec.dumps(state)
    digest = codec.digest(text)
    build_ms = (time.perf_counter() - started) * 1000
    document = protocol.desired_document(revision, digest, text, time.time())
    outcome = int(
        client.eval(
            protocol.STORE_DESIRED_LUA,
            3,
            keys.desired,
            keys.desired_revision,
            keys.desired_digest,
            revision,
            document,
            digest,
            "1" if force else "0",
        )
    )
    if outcome == STORED:
        told, told_digest = revision, digest
    else:
        # Someone stored a newer revision (OLDER) or this very state is already stored
        # (UNCHANGED): nudge the agent with what is stored, so a lost task cannot strand it.
        stored, stored_digest = client.mget([keys.desired_revision, keys.desired_digest])
        told = int(stored or revision)
        told_digest = stored_digest.decode() if stored_digest else digest
        # The ports marked above are carried by what is stored: the same state (UNCHANGED),
        # or a newer one (OLDER), built from a later read.
        Port.objects.filter(host__name=host_name, host_revision=revision).update(host_revision=told)
    Host.objects.filter(name=host_name, desired_revision__lt=told).update(
        desired_revision=told, desired_digest=told_digest
    )
    Host.objects.filter(
        Q(name=host_name), Q(applied_revision__lt=told), ~Q(status=HostStatus.FAILED)
    ).update(status=HostStatus.SYNCING)
    # Only a live agent gets a nudge: one that is down reads the newest state when it starts
    # (it beats before it reads, and we store before we look), and a queue nobody consumes
    # would otherwise fill up with tasks.
    if client.exists(keys.heartbeat):
        via.send(
            protocol.TASK_SYNC,
            {"revision": told, "reason": reason[:200]},
            protocol.host_queue(host_name),
        )
    return PublishResult(host_name, told, digest, outcome, build_ms)


def publish_hosts(
    host_names: Iterable[str],
    reason: str = "",
    *,
    via: SyncChannel | None = None,
    receipts: dict[str, list[int]] | None = None,
) -> list[PublishResult]:
    """Publish every named host, each on its own; clear the intents (`receipts`) of those
    published. Never raises: the change is committed already; a host that could not be
    published keeps an intent (one is written if it had none) and the reconciler retries it.
    """
    receipts = receipts or {}
    results = []
    for name in sorted({name for name in host_names if name}):
        try:
            result = publish_host(name, reason, via=via)
        except Exception as exc:
            results.append(_publish_failed(name, reason, exc, receipts.get(name, [])))
            continue
        results.append(result)
        if receipts.get(name):
            PublishIntent.objects.filter(id__in=receipts[name]).delete()
    return results


def _publish_failed(name: str, reason: str, exc: Exception, receipt: list[int]) -> PublishResult:
    # kombu raises its own OperationalError for a dead broker
    broker = type(exc).__module__.split(".")[0] in {"kombu", "celery", "amqp"}
    expected = broker or isinstance(exc, (redis.RedisError, OSError, ConnectionError))
    what = "nudge" if broker else "publish"
    if expected:
        log.warning("could not %s host %r (%s): %s; kept for retry", what, name, reason, exc)
    else:  # a bug or bad data for this host alone: say so loudly, publish the others
        log.exception("could not publish host %r (%s); kept for retry", name, reason)
    error = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        kept = PublishIntent.objects.filter(id__in=receipt).update(
            attempts=F("attempts") + 1, last_error=error
        )
        if not kept:
            PublishIntent.objects.create(
                host_name=name, reason=reason[:255], attempts=1, last_error=error
            )
    except Exception:
        log.exception("could not keep the intent to publish %r", name)
    return PublishResult(name, 0, "", OLDER, 0.0, error=error)


def inline_hosts_limit() -> int:
    return int(settings.SGWEB_PUBLISH_INLINE_HOSTS)


def publish_changed(
    receipts: dict[str, list[int]], reason: str = "", *, via: SyncChannel | None = None
) -> list[PublishResult]:
    """What the dispatcher's hook calls after commit.

    A few hosts are published right here, so the agents start before the API call returns.
    A change reaching many hosts (a group used everywhere) would make the request pay for
    building every host's state (about 0.15 s for a 1000-port host), so it is handed to the
    control worker as one task instead (with the intents it clears); if that cannot be sent, it
    is published here anyway.
    """
    names = sorted(name for name in receipts if name)
    if len(names) > inline_hosts_limit():
        via = via or channel()
        try:
            kwargs = {"hosts": names, "reason": reason[:200], "intents": receipts}
            via.send(protocol.TASK_PUBLISH, kwargs, via.control_queue)
            return []
        except Exception as exc:
            log.warning("could not hand %d hosts to the control worker: %s", len(names), exc)
    return publish_hosts(names, reason, via=via, receipts=receipts)


class PublishingHostSync:
    """`sgweb.dispatch`'s host-sync hook: which hosts a change reaches, and publishing them.

    With `SGWEB_PUBLISH_TO_HOSTS` off (the test process), nothing reaches Redis; the hosts'
    desired revision still moves on, so the dashboard shows them behind.
    """

    def affected_hosts(self, change: FirewallChange) -> set[str]:
        return (
            set(change.hosts)
            | hosts_using_groups(change.groups)
            | hosts_referencing_groups(change.members_of)
        )

    def changed(self, hosts: set[str], reason: str) -> dict[str, int]:
        """The outbox: one intent per host, in the change's own transaction."""
        intents = PublishIntent.objects.bulk_create(
            PublishIntent(host_name=name, reason=reason[:255]) for name in sorted(hosts)
        )
        return {intent.host_name: int(intent.pk) for intent in intents}

    def publish(self, receipts: dict[str, list[int]], reason: str) -> dict[str, int]:
        """The revision each host was told about (it carries the change); hosts handed to the
        control worker, or left to the reconciler, are not known yet and left out."""
        if settings.SGWEB_PUBLISH_TO_HOSTS:
            results = publish_changed(receipts, reason)
            return {result.host: result.revision for result in results if result.revision}
        Host.objects.filter(name__in=list(receipts)).update(
            desired_revision=F("desired_revision") + 1
        )
        PublishIntent.objects.filter(id__in=[i for ids in receipts.values() for i in ids]).delete()
        return dict(
            Host.objects.filter(name__in=list(receipts)).values_list("name", "desired_revision")
        )


def send_host_task(host: str, task: str, kwargs: dict[str, object]) -> None:
    via = channel()
    via.send(task, kwargs, protocol.host_queue(host))


def install() -> None:
    """Make `sgweb.dispatch` publish through this module (at start-up, see apps.py)."""
    dispatch.install_host_sync(PublishingHostSync(), send_host_task)
