"""The control queue's drop-log task: agents send it by name (`sgweb.wire.packetlog`).

The batch document comes as the keyword `batch` (`kwargs={"batch": FlowBatch.as_dict()}`, as
the accounting task takes `deltas`); a lone positional argument or any one keyword is taken
too, so the agent's call and this task cannot fall out over a name.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from sgweb.droplog import actions
from sgweb.wire import packetlog as wire

log = logging.getLogger(__name__)


@shared_task(name=wire.TASK_RECORD_FLOWS, ignore_result=True)
def record_flows(*args: Any, **kwargs: Any) -> None:
    document = kwargs.pop("batch", None)
    if document is None:
        given = [*args, *kwargs.values()]
        document = given[0] if len(given) == 1 else None
    if not isinstance(document, dict):
        log.error("drop log: a record_flows task without one batch document")
        return
    try:
        actions.record(document)
    except wire.FlowBatchError as exc:
        log.error("drop log: %s", exc)  # a malformed batch changes nothing
