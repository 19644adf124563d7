"""Publishing a host's desired state: what `sgweb.dispatch.firewall_changed` calls after commit.

Per host: take the next revision from Redis (one counter per host, so several web servers agree),
then build the state from the database, store it with its digest unless a newer revision is
already stored, and send the host's agent a tiny `sgweb.agent.sync` task naming the revision.

Why the revision is taken *before* reading the database: a publisher that reads later gets a
higher number, and it read after every commit that preceded its INCR, so the highest revision
always carries the newest state; the store is conditional (Lua), so an older revision never
overwrites a newer one however the publishers interleave. The agent always fetches the newest
stored state, so a burst of tasks coalesces into one apply plus cheap no-ops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import F, Q

from sgweb import dispatch
from sgweb.dispatch import FirewallChange
from sgweb.firewall import codec
from sgweb.firewall.model import HostState
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.desired_state import host_state
from sgweb.hostsync.impact import hosts_referencing_groups, hosts_using_groups
from sgweb.hostsync.models import PublishBacklog
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host
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


def publish_host(
    host_name: str, reason: str = "", *, via: SyncChannel | None = None
) -> PublishResult:
    """Publish one host's desired state now; raises redis/kombu errors to the caller."""
    via = via or channel()
    keys = via.keys(host_name)
    client = via.redis
    recorded = Host.objects.filter(name=host_name).values_list("desired_revision", flat=True)
    floor = next(iter(recorded), 0)
    revision = int(client.eval(protocol.NEXT_REVISION_LUA, 1, keys.revision, floor))

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
        )
    )
    if outcome == STORED:
        told = revision
    else:
        # Someone stored a newer revision (OLDER) or this very state is already stored
        # (UNCHANGED): nudge the agent with what is stored, so a lost task cannot strand it.
        stored = client.get(keys.desired_revision)
        told = int(stored or revision)
    Host.objects.filter(name=host_name, desired_revision__lt=told).update(desired_revision=told)
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
    host_names: Iterable[str], reason: str = "", *, via: SyncChannel | None = None
) -> list[PublishResult]:
    """Publish every named host; a host that cannot be published goes into the backlog.

    Never raises for broker or Redis trouble: the change is committed already, and the
    reconciler (control worker) publishes the backlog once Redis answers again.
    """
    results = []
    for name in sorted({name for name in host_names if name}):
        try:
            results.append(publish_host(name, reason, via=via))
        except Exception as exc:
            # kombu raises its own OperationalError for a dead broker
            broker = type(exc).__module__.split(".")[0] in {"kombu", "celery", "amqp"}
            if not broker and not isinstance(exc, (redis.RedisError, OSError, ConnectionError)):
                raise
            what = "nudge" if broker else "publish"
            log.warning("could not %s host %s (%s): %s; queued for retry", what, name, reason, exc)
            PublishBacklog.objects.update_or_create(
                host_name=name, defaults={"reason": reason[:255], "last_error": str(exc)}
            )
            results.append(PublishResult(name, 0, "", OLDER, 0.0, error=str(exc)))
    return results


def inline_hosts_limit() -> int:
    return int(settings.SGWEB_PUBLISH_INLINE_HOSTS)


def publish_changed(
    host_names: Iterable[str], reason: str = "", *, via: SyncChannel | None = None
) -> list[PublishResult]:
    """What the dispatcher's hook calls after commit.

    A few hosts are published right here, so the agents start before the API call returns.
    A change reaching many hosts (a group used everywhere) would make the request pay for
    building every host's state (about 0.15 s for a 1000-port host), so it is handed to the
    control worker as one task instead; if that cannot be sent, it is published here anyway.
    """
    names = sorted({name for name in host_names if name})
    if len(names) > inline_hosts_limit():
        via = via or channel()
        try:
            via.send(
                protocol.TASK_PUBLISH, {"hosts": names, "reason": reason[:200]}, via.control_queue
            )
            return []
        except Exception as exc:
            log.warning("could not hand %d hosts to the control worker: %s", len(names), exc)
    return publish_hosts(names, reason, via=via)


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

    def changed(self, hosts: set[str], reason: str) -> None:
        """Nothing to remember inside the transaction yet: publishing happens after commit."""

    def publish(self, hosts: set[str], reason: str) -> dict[str, int]:
        """The revision each host was told about (it carries the change); hosts handed to the
        control worker, or waiting in the backlog, are not known yet and left out."""
        if settings.SGWEB_PUBLISH_TO_HOSTS:
            results = publish_changed(hosts, reason)
            return {result.host: result.revision for result in results if result.revision}
        Host.objects.filter(name__in=hosts).update(desired_revision=F("desired_revision") + 1)
        return dict(Host.objects.filter(name__in=hosts).values_list("name", "desired_revision"))


def send_host_task(host: str, task: str, kwargs: dict[str, object]) -> None:
    via = channel()
    via.send(task, kwargs, protocol.host_queue(host))


def install() -> None:
    """Make `sgweb.dispatch` publish through this module (at start-up, see apps.py)."""
    dispatch.install_host_sync(PublishingHostSync(), send_host_task)
