"""`/ws/routers/<router_id>`: a router's firewall rule counters, pushed as its network node's
agent reads them (issue 16)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, cast

import redis.asyncio as aioredis
from channels.db import database_sync_to_async

from sgweb.hostsync.channel import channel
from sgweb.live.consumers.base import LiveConsumer, parse_uuid
from sgweb.live.routerhits import router_hits_message
from sgweb.routers.models import Router
from sgweb.tenancy.access import scope
from sgweb.wire import routers as wire

log = logging.getLogger(__name__)

# The agent writes a new reading about once a second; looking four times as often shows it
# within a quarter of a second without asking Redis for more than one small key.
READ_S = 0.25
RENEW_EVERY = int(wire.HITS_EVERY_S / READ_S)  # renew the watch about once a second


class RouterConsumer(LiveConsumer):
    """`router-hits` whenever the node's agent read new counters (about once a second while
    the socket is open: the socket itself keeps the agent reading them)."""

    async def authorise(self, user: Any) -> bool:
        return cast(bool, await database_sync_to_async(self._find)(user))

    def _find(self, user: Any) -> bool:
        wanted = parse_uuid(self.scope["url_route"]["kwargs"]["router_id"])
        if wanted is None:
            return False
        router = scope(user, Router.objects.select_related("host")).filter(pk=wanted).first()
        if router is None:
            return False
        self.router_id = str(router.pk)
        self.host = router.host.name if router.host else None
        return True

    async def start(self) -> None:
        self.redis: Any = None  # redis.asyncio.Redis, once there is a node to read
        if self.host is None:
            await self.send_json(router_hits_message(self.router_id, None, "no network node"))
            return
        via = await database_sync_to_async(channel)()
        self.keys = wire.router_keys(self.host, via.prefix)
        self.redis = aioredis.Redis.from_url(via.redis_url, socket_connect_timeout=2)
        self.spawn(self.pump())

    async def stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def pump(self) -> None:
        """Renew the watch, read the node's latest counters, send them when they are new (and
        once at first, so the page says what it has); a Redis outage is said, then retried."""
        sent_at: object = ()  # nothing sent yet
        round_ = 0
        while True:
            error, document = "", None
            try:
                if round_ % RENEW_EVERY == 0:
                    await self.redis.set(self.keys.watched, "1", ex=wire.WATCH_TTL_S)
                raw = await self.redis.get(self.keys.hits)
                document = json.loads(raw) if raw else None
            except Exception as exc:
                error = f"counters unavailable: {type(exc).__name__}"
            at = (document or {}).get("at")
            if (at, error) != sent_at:
                await self.send_json(router_hits_message(self.router_id, document, error))
                sent_at = (at, error)
            round_ += 1
            await asyncio.sleep(READ_S)
