"""`/ws/traces/<trace_id>`: a trace's messages so far, then live ones."""

from __future__ import annotations

from typing import Any, cast

from channels.db import database_sync_to_async

from sgweb.live import events
from sgweb.live.consumers.base import LiveConsumer
from sgweb.tenancy.errors import NotFound
from sgweb.traces.actions import get_trace
from sgweb.traces.models import Trace


class TraceConsumer(LiveConsumer):
    """`/ws/traces/<trace_id>`: the trace's messages so far, then live ones."""

    async def authorise(self, user: Any) -> bool:
        return cast(bool, await database_sync_to_async(self._find)(user))

    def _find(self, user: Any) -> bool:
        try:
            self.trace = get_trace(user, self.scope["url_route"]["kwargs"]["trace_id"])
        except NotFound:
            return False
        return True

    async def start(self) -> None:
        # Join first, then replay: a message arriving in between comes twice, never not at all;
        # `seq` tells the doubles.
        self.sent_seq = -1
        await self.join(events.trace_group(str(self.trace.pk)))
        stored = await database_sync_to_async(self._events)()
        for message in stored:
            await self._send_once(message)

    def _events(self) -> list[dict[str, Any]]:
        return list(Trace.objects.values_list("events", flat=True).get(pk=self.trace.pk))

    async def _send_once(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= self.sent_seq:
                return
            self.sent_seq = seq
        await self.send_json(message)

    async def live_message(self, event: dict[str, Any]) -> None:
        if not self.closed:
            await self._send_once(event["message"])
