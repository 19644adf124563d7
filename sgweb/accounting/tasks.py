"""The control queue's accounting tasks: agents send them by name (`sgweb.wire.accounting`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from sgweb.accounting import actions, firewall
from sgweb.wire import accounting as wire

log = logging.getLogger(__name__)


@shared_task(name=wire.TASK_RECORD_ACCOUNTING, ignore_result=True)
def record_accounting(deltas: dict[str, Any]) -> None:
    try:
        actions.record(deltas)
    except wire.DeltasError as exc:
        log.error("accounting: %s", exc)  # a malformed document changes nothing
        return
    actions.prune_now_and_then()


@shared_task(name=wire.TASK_RECORD_FIREWALL_ACCOUNTING, ignore_result=True)
def record_firewall_accounting(deltas: dict[str, Any]) -> None:
    """A network node's firewall rules (issue 16); pruned with the rest."""
    try:
        firewall.record_firewall(deltas)
    except wire.DeltasError as exc:
        log.error("firewall accounting: %s", exc)
        return
    actions.prune_now_and_then()
