"""The control plane's safety net: whatever diverged, for whatever reason, is repaired.

Runs when a control worker starts and then every `SGWEB_RECONCILE_INTERVAL_S` seconds (5) in
that worker (`celery -A sgweb.celery worker -Q control`). Each round:

1. the outbox: hosts with a `PublishIntent` older than `OUTBOX_GRACE_S` are published (a web
   server or control worker killed between commit and publish, Redis down at commit time);
2. content, not revision numbers: for every host, the digest of the desired state built from
   the database is compared with the digest stored in Redis (different or missing: publish)
   and with the digest the host's agent says it applied in its heartbeat (different: nudge the
   agent; if its applied revision is not below the stored one, which only a Redis that lost its
   counter can cause, the state is re-stored under a revision above the agent's). A host whose
   agent applied something else is not shown as in sync, whatever its revision numbers say;
3. the heartbeat copied into `Host.last_heartbeat_at`, hosts without one marked down.

So any divergence is repaired within one interval plus one round and the agent's apply (about
6-7 s by default; `bench.repair` measures it). Building every host's state costs about 0.15 s for a
1000-port host; a round checks content for at most half an interval and goes on with the next
hosts in the following round, so very large fleets take a few rounds. Every host is handled on
its own: one that fails (a state that cannot be built, a publish Redis refuses) is logged and
retried next round, and the others go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from sgweb.firewall import manifest
from sgweb.hostsync import publish
from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.models import PublishIntent
from sgweb.hostsync.network_nodes import check_network_nodes
from sgweb.hostsync.records import record_republish
from sgweb.hostsync.status import Liveness, host_liveness
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

HEARTBEAT_COPY_AGE = dt.timedelta(seconds=30)
# The request's own after-commit publish normally clears its intents within milliseconds; the
# reconciler leaves younger intents alone so it does not publish the same hosts a second time.
OUTBOX_GRACE_S = 1.0


@dataclass
class ReconcileResult:
    published: list[str] = field(default_factory=list)
    nudged: list[str] = field(default_factory=list)
    marked_down: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)  # content differed (DB/Redis/agent)
    failed: dict[str, str] = field(default_factory=dict)  # host -> why it could not be handled
    routers: dict[str, str] = field(default_factory=dict)  # network node -> published / nudged
    error: str = ""


@dataclass(frozen=True, slots=True)
class Stored:
    revision: int | None
    digest: str | None


def stored_states(names: list[str], via: SyncChannel) -> dict[str, Stored]:
    """name -> the revision and digest stored in Redis (None, None: nothing stored)."""
    if not names:
        return {}
    keys = [via.keys(name) for name in names]
    values = via.redis.mget([k.desired_revision for k in keys] + [k.desired_digest for k in keys])
    revisions, digests = values[: len(names)], values[len(names) :]
    return {
        name: Stored(
            int(revision) if revision is not None else None,
            digest.decode() if isinstance(digest, bytes) else digest,
        )
        for name, revision, digest in zip(names, revisions, digests, strict=True)
    }


class _Round:
    """One reconcile round; the steps share what they read."""

    cursor = 0  # where the content check goes on next round (see the module doc)

    def __init__(self, via: SyncChannel, startup: bool, budget_s: float) -> None:
        self.via = via
        self.startup = startup
        self.budget_s = budget_s
        self.result = ReconcileResult()
        self.hosts = list(Host.objects.order_by("name"))
        self.names = [host.name for host in self.hosts]
        self.stored = stored_states(self.names, via)
        self.live = host_liveness(self.names, via=via)

    def publish(self, name: str, reason: str, *, force: bool = False) -> bool:
        try:
            publish.publish_host(name, reason, via=self.via, force=force)
        except Exception as exc:
            self.result.failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning("reconcile: could not publish %r (%s): %s", name, reason, exc)
            return False
        try:
            record_republish(name, reason)
        except Exception:
            log.exception("reconcile: could not record the re-publish of %r", name)
        self.result.published.append(name)
        self.stored.pop(name, None)
        return True

    def drain_outbox(self) -> None:
        cutoff = timezone.now() - dt.timedelta(seconds=OUTBOX_GRACE_S)
        intents = list(
            PublishIntent.objects.filter(created_at__lte=cutoff).values_list("id", "host_name")
        )
        by_host: dict[str, list[int]] = {}
        for intent_id, name in intents:
            by_host.setdefault(name, []).append(intent_id)
        for name, ids in sorted(by_host.items()):
            if self.publish(name, "reconcile: publish left in the outbox"):
                PublishIntent.objects.filter(id__in=ids).delete()
            else:
                PublishIntent.objects.filter(id__in=ids).update(
                    last_error=self.result.failed.get(name, "")[:2000]
                )

    def check_content(self) -> None:
        # Hosts with an intent left are being published right now (younger than the grace) or
        # failed this round; the outbox covers them, a content check would only publish twice.
        pending = set(PublishIntent.objects.values_list("host_name", flat=True).distinct())
        started = time.monotonic()
        count = len(self.hosts)
        start = _Round.cursor % count if count else 0
        for step in range(count):
            if step and time.monotonic() - started > self.budget_s:
                _Round.cursor = (start + step) % count
                return
            host = self.hosts[(start + step) % count]
            if host.name in self.result.published or host.name in pending:
                continue
            try:
                self.check_host(host)
            except Exception as exc:  # this host only: the others still get checked
                self.result.failed[host.name] = f"{type(exc).__name__}: {exc}"
                log.exception("reconcile: could not check host %r", host.name)
        _Round.cursor = 0

    def check_host(self, host: Host) -> None:
        digest = manifest.state_digest(publish.state_builder(host.name))
        stored = self.stored.get(host.name, Stored(None, None))
        beat = self.live.get(host.name)
        if stored.digest != digest:
            self.result.diverged.append(host.name)
            why = "nothing stored in Redis" if stored.digest is None else "Redis holds another"
            self.publish(host.name, f"reconcile: database state differs ({why})")
        elif beat is not None and beat.alive and beat.applied_digest != digest:
            self.result.diverged.append(host.name)
            self.move_agent(host.name, stored, beat)
        elif self.startup and host.applied_revision < host.desired_revision:
            self.publish(host.name, "control plane start: host lags")
        elif beat is not None and beat.alive and beat.agent_status == "in-sync":
            self.confirm_in_sync(host, digest, beat)
            return
        if host.applied_digest != digest and host.status == HostStatus.IN_SYNC:
            Host.objects.filter(pk=host.pk, status=HostStatus.IN_SYNC).update(
                status=HostStatus.SYNCING
            )

    @staticmethod
    def confirm_in_sync(host: Host, digest: str, beat: Liveness) -> None:
        """The agent says it holds the database's very state: record it, even if its apply
        report was lost (a Redis flushed with the report still queued)."""
        if host.status == HostStatus.IN_SYNC and host.applied_digest == digest:
            return
        applied = max(host.applied_revision, int(beat.applied_revision or 0))
        Host.objects.filter(pk=host.pk).update(
            status=HostStatus.IN_SYNC,
            applied_digest=digest,
            applied_revision=applied,
            desired_digest=digest,
            desired_revision=max(host.desired_revision, applied),
            last_error="",
        )

    def move_agent(self, name: str, stored: Stored, beat: Liveness) -> None:
        if beat.agent_status == "failed" and beat.detail.get("failed_revision") == stored.revision:
            return  # it refused this very state; it retries by itself, the host shows failed
        applied = beat.applied_revision or 0
        if stored.revision is not None and applied >= stored.revision:
            self.publish(name, "reconcile: agent holds another state", force=True)
            return
        self.via.send(
            protocol.TASK_SYNC,
            {"revision": stored.revision, "reason": "reconcile: agent applied another state"},
            protocol.host_queue(name),
        )
        self.result.nudged.append(name)

    def copy_liveness(self) -> None:
        now = dt.datetime.now(tz=dt.UTC)
        for host in self.hosts:
            try:
                self._copy_one(host, self.live.get(host.name), now)
            except Exception as exc:
                self.result.failed.setdefault(host.name, f"{type(exc).__name__}: {exc}")
                log.exception("reconcile: could not update host %r", host.name)

    def _copy_one(self, host: Host, beat: Liveness | None, now: dt.datetime) -> None:
        if beat is None or not beat.alive:
            if host.status != HostStatus.DOWN and host.last_heartbeat_at is not None:
                Host.objects.filter(pk=host.pk).update(status=HostStatus.DOWN)
                self.result.marked_down.append(host.name)
            return
        seen = dt.datetime.fromtimestamp(beat.last_seen or 0, tz=dt.UTC)
        updates: dict[str, object] = {"last_heartbeat_at": min(seen, now)}
        if host.status in (HostStatus.DOWN, HostStatus.UNKNOWN):
            in_sync = (beat.applied_revision or 0) >= host.desired_revision
            updates["status"] = (
                HostStatus.FAILED
                if beat.agent_status == "failed"
                else HostStatus.IN_SYNC
                if in_sync
                else HostStatus.SYNCING
            )
        # The heartbeat itself lives in Redis; the database copy only needs to be roughly
        # current, and every write competes with the web requests (SQLite locks the file).
        stale = host.last_heartbeat_at is None or now - host.last_heartbeat_at > HEARTBEAT_COPY_AGE
        if "status" in updates or stale:
            Host.objects.filter(pk=host.pk).update(**updates)


def reconcile(
    *, startup: bool = False, via: SyncChannel | None = None, budget_s: float | None = None
) -> ReconcileResult:
    via = via or channel()
    try:
        via.redis.ping()
    except (redis.RedisError, OSError) as exc:
        return ReconcileResult(error=str(exc))
    work = _Round(via, startup, interval_s() / 2 if budget_s is None else budget_s)
    work.drain_outbox()
    work.check_content()
    work.copy_liveness()
    # Issue 16: network nodes' router state, compared by content the same way (see network_nodes).
    work.result.routers = check_network_nodes(via)
    return work.result


def interval_s() -> float:
    return float(settings.SGWEB_RECONCILE_INTERVAL_S)


class Reconciler(threading.Thread):
    """Background loop in the control worker; stops with the process (daemon thread)."""

    def __init__(self, every_s: float | None = None) -> None:
        super().__init__(name="sgweb-reconciler", daemon=True)
        self.every_s = every_s or interval_s()
        self.stopping = threading.Event()

    def run(self) -> None:
        startup = True
        while not self.stopping.is_set():
            if protocol.owner_gone(settings.SGWEB_OWNER_PID):
                log.warning("the process that started this control worker is gone; exiting")
                os._exit(0)
            try:
                close_old_connections()
                outcome = reconcile(startup=startup)
                startup = startup and bool(outcome.error)
                if outcome.published or outcome.marked_down or outcome.nudged or outcome.routers:
                    log.info(
                        "reconcile: published %s, nudged %s, down %s, failed %s, routers %s",
                        outcome.published, outcome.nudged, outcome.marked_down,
                        sorted(outcome.failed), outcome.routers,
                    )  # fmt: skip
            except Exception:
                log.exception("reconcile failed")
            finally:
                close_old_connections()
            self.stopping.wait(self.every_s)

    def stop(self) -> None:
        self.stopping.set()
