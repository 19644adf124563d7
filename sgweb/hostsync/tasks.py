"""Celery tasks of the control queue (`celery -A sgweb.celery worker -Q control`).

Agents send these by name (see `protocol`); they carry plain JSON dicts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from django.db import OperationalError

from sgweb.hostsync import records
from sgweb.hostsync.publish import publish_hosts
from sgweb.hostsync.reconcile import Reconciler
from sgweb.hostsync.routers_publish import record_router_apply as _record_router_apply
from sgweb.wire import routers as router_wire
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

_reconciler = None


def _with_retries(write: Any, *args: Any) -> None:
    """SQLite answers concurrent writers with "database is locked" at once in some cases
    (a reader upgrading to a writer); a report is worth a few short retries."""

    for attempt in range(5):
        try:
            write(*args)
            return
        except OperationalError as error:
            if "locked" not in str(error) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


@shared_task(name=protocol.TASK_RECORD_APPLY, ignore_result=True)
def record_apply(report: dict[str, Any]) -> None:
    _with_retries(records.record_apply, report)


@shared_task(name=protocol.TASK_RECORD_DRIFT, ignore_result=True)
def record_drift(report: dict[str, Any]) -> None:
    _with_retries(records.record_drift, report)


@shared_task(name=router_wire.TASK_RECORD_ROUTER_APPLY, ignore_result=True)
def record_router_apply(report: dict[str, Any]) -> None:
    """A network node's router apply report (issue 16)."""
    _record_router_apply(report)


@shared_task(name=protocol.TASK_REQUEST_STATE, ignore_result=True)
def request_state(host: str, reason: str = "agent asked") -> None:
    for outcome in publish_hosts([host], reason):
        if not outcome.error:
            records.record_republish(outcome.host, reason)


@shared_task(name=protocol.TASK_PUBLISH, ignore_result=True)
def publish(
    hosts: list[str],
    reason: str = "",
    intents: dict[str, list[int]] | None = None,
    reuse: list[str] | None = None,
) -> None:
    """A change that reached many hosts; `intents` are its outbox rows, cleared per host;
    `reuse` the hosts whose ports it did not touch (see `sgweb.hostsync.fanout`)."""
    publish_hosts(hosts, reason, receipts=intents or {}, reuse=reuse or ())


def _consumes_control_queue(consumer: Any) -> bool:
    try:
        names = {queue.name for queue in consumer.task_consumer.queues}
    except AttributeError:
        return False
    return settings.SGWEB_CONTROL_QUEUE in names


@worker_ready.connect
def _start_reconciler(sender: Any = None, **_: Any) -> None:
    """Only the control worker reconciles, and it starts by catching up (see reconcile.py)."""
    global _reconciler
    if sender is None or not _consumes_control_queue(sender):
        return

    _reconciler = Reconciler()
    _reconciler.start()
    log.info("host reconciler started (every %.1f s)", _reconciler.every_s)


@worker_shutdown.connect
def _stop_reconciler(**_: Any) -> None:
    if _reconciler is not None:
        _reconciler.stop()
