"""Publishing a host's desired state: what `sgweb.dispatch.firewall_changed` calls after commit.

Per host: take the next revision from Redis (one counter per host, so several web servers agree),
then build the state from the database, store it with its digest unless a newer revision is
already stored, and nudge the host's agent: a PUBLISH naming the revision on the host's channel
(`sgweb.wire.sync`; the agent also polls, and the reconciler nudges through its Celery queue).

Why the revision is taken *before* reading the database: a publisher that reads later gets a
higher number, and it read after every commit that preceded its INCR, so the highest revision
always carries the newest state; the store is conditional (Lua), so an older revision never
overwrites a newer one however the publishers interleave. The agent always fetches the newest
stored state, so a burst of nudges coalesces into one apply plus cheap no-ops, and a nudge that
arrives late (another control worker's, naming an older revision) is a no-op.

Durability: a change writes a `PublishIntent` per host in its own transaction (`changed`); the
publisher deletes exactly the intents it was given once the host's state is stored, so a process
killed between commit and publish leaves its intents for the reconciler. Each host is published
on its own: whatever one host's trouble (a dead agent, a state that cannot be built, Redis
refusing its key), the others are published and the failing host keeps its intent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db.models import F

from sgweb import dispatch
from sgweb.dispatch import FirewallChange
from sgweb.firewall.model import HostState
from sgweb.hostsync import fanout
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.desired_state import host_state
from sgweb.hostsync.impact import hosts_referencing_groups, hosts_using_groups
from sgweb.hostsync.models import PublishIntent
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


def _builder() -> Callable[[str], HostState] | None:
    """None for the database (shared parts read once per publish), else a test's builder."""
    return None if state_builder is _default_builder else state_builder


def publish_host(
    host_name: str, reason: str = "", *, via: SyncChannel | None = None, force: bool = False
) -> PublishResult:
    """Publish one host's desired state now (in full, from the database); raises redis/kombu
    errors and the host's own build error to the caller.

    `force`: store it under a new revision even if the same state is stored (see the Lua)."""
    via = via or channel()
    (outcome,) = fanout.publish_many([host_name], reason, via=via, force=force, builder=_builder())
    if outcome.error is not None:
        raise outcome.error
    return PublishResult(
        outcome.host, outcome.revision, outcome.digest, outcome.outcome, outcome.build_ms
    )


def publish_hosts(
    host_names: Iterable[str],
    reason: str = "",
    *,
    via: SyncChannel | None = None,
    receipts: dict[str, list[int]] | None = None,
    reuse: Iterable[str] = (),
) -> list[PublishResult]:
    """Publish every named host; clear the intents (`receipts`) of those published. Never
    raises: the change is committed already; a host that could not be published keeps an
    intent (one is written if it had none) and the reconciler retries it.

    `reuse`: hosts whose own ports the change did not touch (see `fanout`). All hosts go out
    together (pipelined, shared pieces once); if Redis or the broker fails on the way, each
    host is tried on its own, so one host's trouble does not hold up the others.
    """
    receipts = receipts or {}
    names = sorted({name for name in host_names if name})
    if not names:
        return []
    via = via or channel()
    try:
        outcomes = fanout.publish_many(names, reason, via=via, reuse=reuse, builder=_builder())
    except Exception as exc:
        log.warning("publishing %d hosts together failed (%s); one by one", len(names), exc)
        return _publish_one_by_one(names, reason, via, receipts)
    results = []
    done: list[int] = []
    for outcome in outcomes:
        if outcome.error is not None:
            failed = receipts.get(outcome.host, [])
            results.append(_publish_failed(outcome.host, reason, outcome.error, failed))
            continue
        results.append(
            PublishResult(
                outcome.host, outcome.revision, outcome.digest, outcome.outcome, outcome.build_ms
            )
        )
        done += receipts.get(outcome.host, [])
    if done:
        PublishIntent.objects.filter(id__in=done).delete()
    return results


def _publish_one_by_one(
    names: list[str], reason: str, via: SyncChannel, receipts: dict[str, list[int]]
) -> list[PublishResult]:
    results = []
    for name in names:
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
    receipts: dict[str, list[int]],
    reason: str = "",
    *,
    via: SyncChannel | None = None,
    reuse: Iterable[str] = (),
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
            kwargs = {
                "hosts": names,
                "reason": reason[:200],
                "intents": receipts,
                "reuse": sorted(set(reuse) & set(names)),
            }
            via.send(protocol.TASK_PUBLISH, kwargs, via.control_queue)
            return []
        except Exception as exc:
            log.warning("could not hand %d hosts to the control worker: %s", len(names), exc)
    return publish_hosts(names, reason, via=via, receipts=receipts, reuse=reuse)


_local = threading.local()


class PublishingHostSync:
    """`sgweb.dispatch`'s host-sync hook: which hosts a change reaches, and publishing them.

    With `SGWEB_PUBLISH_TO_HOSTS` off (the test process), nothing reaches Redis; the hosts'
    desired revision still moves on, so the dashboard shows them behind.
    """

    def _ports_touched(self) -> set[str]:
        """Hosts whose ports a change in this thread touched and that were not published yet:
        published in full; the others keep their stored ports (see `fanout`). A rolled-back
        change leaves its hosts here, which only costs them one full build."""
        touched: set[str] | None = getattr(_local, "touched", None)
        if touched is None:
            touched = _local.touched = set()
        return touched

    def affected_hosts(self, change: FirewallChange) -> set[str]:
        self._ports_touched().update(change.hosts)
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
        touched = self._ports_touched()
        reuse = set(receipts) - touched
        touched.difference_update(receipts)
        if settings.SGWEB_PUBLISH_TO_HOSTS:
            results = publish_changed(receipts, reason, reuse=reuse)
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
