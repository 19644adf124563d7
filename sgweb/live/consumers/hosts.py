"""`/ws/hosts/<name>` (one host) and `/ws/events` (every host the user may see, and changes)."""

from __future__ import annotations

from typing import Any, cast

from channels.db import database_sync_to_async

from sgweb.live import events
from sgweb.live.consumers.base import LiveConsumer
from sgweb.live.hoststatus import router_applies, visible_host_names
from sgweb.networks.models import Host


class HostConsumer(LiveConsumer):
    """`/ws/hosts/<name>`: `host-status`, `apply`, `drift` for one host."""

    async def authorise(self, user: Any) -> bool:
        return cast(bool, await database_sync_to_async(self._visible)(user))

    def _visible(self, user: Any) -> bool:
        host = Host.objects.filter(name=self.scope["url_route"]["kwargs"]["name"]).first()
        if host is None:
            return False
        self.host = host
        return host.name in visible_host_names(user, [host])

    async def start(self) -> None:
        await self.join(events.host_group(self.host.name))
        self.spawn(self.watch_status([self.host.name]))


class EventsConsumer(LiveConsumer):
    """`/ws/events`: host events for every host the user may see, and the audited changes of
    every project they may see (the overview's recent changes)."""

    async def authorise(self, user: Any) -> bool:
        self.user = user
        self.visible = await database_sync_to_async(visible_host_names)(user, None)
        self.change_groups = await database_sync_to_async(events.change_groups)(user)
        return True

    async def still_allowed(self, user: Any) -> bool:
        """Narrow (or widen) to what the user may see now: a member removed from a project
        stops receiving its changes and its hosts' events; the socket stays open."""
        before = set(self.change_groups)
        await self.authorise(user)
        for group in before - set(self.change_groups):
            await self.leave(group)
        for group in set(self.change_groups) - before:
            await self.join(group)
        return True

    async def start(self) -> None:
        await self.join(events.GROUP_GLOBAL)
        for group in self.change_groups:
            await self.join(group)
        # Changes only: the page drew every host's status already. A page following a change
        # to its hosts (`?statuses=now`) also needs the state as the socket opens: an agent may
        # have applied it between the page's render and this moment.
        query = self.scope.get("query_string", b"")
        snapshot = b"statuses=now" in query
        self.spawn(self.watch_status(None, every_s=5.0, first_round=snapshot))
        # A page following a firewall change to network nodes: their last router applies too.
        if b"routers=now" in query:
            for message in await database_sync_to_async(router_applies)(self.visible):
                await self.send_json(message)

    def wants(self, message: dict[str, Any]) -> bool:
        if message.get("type") in ("change", "changes"):
            # Changes outside any project (hosts, users) are for those who see everything.
            return message.get("project_id") is not None or self.visible is None
        return self.visible is None or message.get("host") in self.visible
