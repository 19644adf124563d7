"""`/ws/drops`: the logged flows (`drop-flows`) of every project the user may see.

A member joins one group per project of theirs, so no flow of another project ever reaches
their socket; the page narrows further (a port, a group, a host) itself. When the user's
access changes the socket narrows (or widens) to what they may see now and stays open.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from sgweb.live import events
from sgweb.live.consumers.base import LiveConsumer


class DropsConsumer(LiveConsumer):
    async def authorise(self, user: Any) -> bool:
        self.drop_groups = await database_sync_to_async(events.drop_groups)(user)
        return True

    async def still_allowed(self, user: Any) -> bool:
        before = set(self.drop_groups)
        await self.authorise(user)
        for group in before - set(self.drop_groups):
            await self.leave(group)
        for group in set(self.drop_groups) - before:
            await self.join(group)
        return True

    async def start(self) -> None:
        for group in self.drop_groups:
            await self.join(group)
