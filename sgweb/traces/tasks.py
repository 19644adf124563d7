"""Control-queue tasks for traces: agents report each trace message here (by task name)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from sgweb.traces.actions import record_event as record
from sgweb.wire import traces as protocol


@shared_task(name=protocol.TASK_RECORD_EVENT, ignore_result=True)
def record_event(trace_id: str, message: dict[str, Any]) -> None:
    record(trace_id, message)
