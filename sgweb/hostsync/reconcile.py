"""The control plane's safety net: re-publish what Redis lost and nudge agents that lag.

Runs when a control worker starts and then every `SGWEB_RECONCILE_INTERVAL_S` seconds in that
worker (`celery -A sgweb.celery worker -Q control`). It covers:

* publishes that failed because Redis was down at commit time (the backlog);
* a Redis that restarted without its data (no desired state stored for a host);
* agents whose applied revision lags the desired one (a nudge got lost);
* at start-up, hosts whose applied revision lags are re-published from the database, so a
  control plane that was down while things changed converges without a human;
* the heartbeat copied into `Host.last_heartbeat_at`, and hosts without one marked down.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import close_old_connections

from sgweb.hostsync.channel import SyncChannel, channel
from sgweb.hostsync.models import PublishBacklog
from sgweb.hostsync.publish import publish_hosts
from sgweb.hostsync.records import record_republish
from sgweb.hostsync.status import desired_revisions, host_liveness
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

HEARTBEAT_COPY_AGE = dt.timedelta(seconds=30)


@dataclass
class ReconcileResult:
    published: list[str] = field(default_factory=list)
    nudged: list[str] = field(default_factory=list)
    marked_down: list[str] = field(default_factory=list)
    error: str = ""


def reconcile(*, startup: bool = False, via: SyncChannel | None = None) -> ReconcileResult:
    via = via or channel()
    result = ReconcileResult()
    hosts = list(Host.objects.all())
    names = [host.name for host in hosts]
    try:
        via.redis.ping()
    except (redis.RedisError, OSError) as exc:
        result.error = str(exc)
        return result

    to_publish: dict[str, str] = {}
    for backlog in PublishBacklog.objects.all():
        to_publish[backlog.host_name] = f"retry after failed publish: {backlog.reason}"
    stored = desired_revisions(names, via=via)
    live = host_liveness(names, via=via)
    for host in hosts:
        if stored.get(host.name) is None:
            to_publish.setdefault(host.name, "no desired state in Redis")
        elif startup and host.applied_revision < host.desired_revision:
            to_publish.setdefault(host.name, "control plane start: host lags")
    if to_publish:
        for outcome in publish_hosts(list(to_publish), "reconcile", via=via):
            if outcome.error:
                continue
            PublishBacklog.objects.filter(host_name=outcome.host).delete()
            record_republish(outcome.host, to_publish[outcome.host])
            result.published.append(outcome.host)

    now = dt.datetime.now(tz=dt.UTC)
    for host in hosts:
        beat = live.get(host.name)
        if beat is None or not beat.alive:
            if host.status != HostStatus.DOWN and host.last_heartbeat_at is not None:
                Host.objects.filter(pk=host.pk).update(status=HostStatus.DOWN)
                result.marked_down.append(host.name)
            continue
        seen = dt.datetime.fromtimestamp(beat.last_seen or 0, tz=dt.UTC)
        updates: dict[str, object] = {"last_heartbeat_at": min(seen, now)}
        if host.status in (HostStatus.DOWN, HostStatus.UNKNOWN):
            in_sync = (beat.applied_revision or 0) >= host.desired_revision
            failed = beat.agent_status == "failed"
            updates["status"] = (
                HostStatus.FAILED
                if failed
                else HostStatus.IN_SYNC
                if in_sync
                else HostStatus.SYNCING
            )
        # The heartbeat itself lives in Redis; the database copy only needs to be roughly
        # current, and every write competes with the web requests (SQLite locks the file).
        stale = host.last_heartbeat_at is None or now - host.last_heartbeat_at > HEARTBEAT_COPY_AGE
        if "status" in updates or stale:
            Host.objects.filter(pk=host.pk).update(**updates)
        wanted = stored.get(host.name)
        if (
            host.name not in to_publish
            and wanted is not None
            and (beat.applied_revision or 0) < wanted
            and beat.agent_status != "failed"
        ):
            via.send(
                protocol.TASK_SYNC,
                {"revision": wanted, "reason": "reconcile: agent lags"},
                protocol.host_queue(host.name),
            )
            result.nudged.append(host.name)
    return result


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
                if outcome.published or outcome.marked_down:
                    log.info(
                        "reconcile: published %s, down %s", outcome.published, outcome.marked_down
                    )
            except Exception:
                log.exception("reconcile failed")
            finally:
                close_old_connections()
            self.stopping.wait(self.every_s)

    def stop(self) -> None:
        self.stopping.set()
