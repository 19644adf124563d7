"""What every live socket shares: authorise (when it opens, and again whenever its user's
access changes), join groups, relay events, watch host status; and the counters mixin of the
sockets that watch chains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from sgweb.hostsync.channel import channel
from sgweb.live import events
from sgweb.live.access import current_user
from sgweb.live.consumers.counterhub import hub
from sgweb.live.hoststatus import host_statuses
from sgweb.wire import live as wire

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
STATUS_EVERY_S = 3.0


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Accept, authorise (`authorise` returns False for "not yours"), join groups, and relay
    `live.message` group events as they are."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.closed = False
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        # Join the user's group first, then read the user afresh (the middleware loaded it
        # before): an access change that lands while this socket opens is either seen by
        # that read or heard as an event, never neither.
        await self.join(events.user_group(user.pk))
        user = await database_sync_to_async(current_user)(self.scope)
        if user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.scope["user"] = user
        try:
            allowed = await self.authorise(user)
        except Exception:
            log.exception("authorising %s failed", self.scope.get("path"))
            allowed = False
        if not allowed:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.start()
        self.spawn(self.recheck_access_every(settings.SGWEB_LIVE_ACCESS_RECHECK_S))

    async def authorise(self, user: Any) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        """Join groups, send the first messages, start background work."""

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    async def leave(self, group: str) -> None:
        await self.channel_layer.group_discard(group, self.channel_name)
        if group in self.groups_joined:
            self.groups_joined.remove(group)

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))

    async def disconnect(self, code: int) -> None:
        await self.release()

    async def release(self) -> None:
        """Stop relaying: background work, groups, watches. Runs once (on disconnect, or at
        once when access is revoked: a client that never acknowledges the close must not go
        on receiving)."""
        if getattr(self, "released", False):
            return
        self.released = True
        self.closed = True
        current = asyncio.current_task()
        others = [task for task in getattr(self, "tasks", []) if task is not current]
        for task in others:
            task.cancel()
        if others:
            # Bounded, and a cancellation of this very task still propagates (suppressing
            # BaseException around `await task` swallowed it and could keep a closing event
            # loop waiting for this consumer forever).
            await asyncio.wait(others, timeout=5)
        for group in list(getattr(self, "groups_joined", [])):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = []
        await self.stop()

    # -- access, checked again after the socket opened ---------------------------------------

    async def live_access(self, event: dict[str, Any]) -> None:
        """`access.changed` for this socket's user (see `sgweb.live.access`)."""
        await self.recheck_access()

    async def recheck_access_every(self, every_s: float) -> None:
        """The backstop: a change that sent no event (a session expiring, a database edited
        by hand) still ends the socket's access within `every_s`."""
        while not self.closed:
            await asyncio.sleep(every_s)
            await self.recheck_access()

    async def recheck_access(self) -> None:
        if self.closed:
            return
        try:
            user = await database_sync_to_async(current_user)(self.scope)
            if user is None:
                await self.revoke(CLOSE_UNAUTHENTICATED)
                return
            self.scope["user"] = user
            allowed = await self.still_allowed(user)
        except Exception:
            # Cannot tell (the database is away): fail closed; the browser reconnects and is
            # authorised afresh.
            log.exception("rechecking access of %s failed", self.scope.get("path"))
            allowed = False
        if not allowed:
            await self.revoke(CLOSE_NOT_FOUND)

    async def still_allowed(self, user: Any) -> bool:
        """May `user` (fresh from the database) still watch this? Consumers whose `authorise`
        is costly, or who relay several projects, override this."""
        return await self.authorise(user)

    async def revoke(self, code: int) -> None:
        log.info("live socket %s closed (%s): access changed", self.scope.get("path"), code)
        await self.release()
        with contextlib.suppress(Exception):
            await self.close(code=code)

    async def stop(self) -> None:
        """Release what `start` took (watches)."""

    async def live_message(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        message = self.narrow(event["message"])
        if message is not None:
            await self.send_json(message)

    def narrow(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """What of a relayed message this socket sends: all of it, or nothing (`wants`);
        sockets that want part of a `changes` message override this."""
        return message if self.wants(message) else None

    async def watch_status(
        self, hosts: list[str] | None, every_s: float = STATUS_EVERY_S, first_round: bool = False
    ) -> None:
        """Send `host-status` whenever a host's status or liveness changes: an agent that dies
        sends nothing, so its heartbeat expiring is only seen by looking. None: every host."""
        last: dict[str, dict[str, Any]] = {}
        while True:
            statuses = await database_sync_to_async(host_statuses)(hosts)
            for name, message in statuses.items():
                changed = last.get(name) != message
                wanted = name in last or hosts is not None or first_round
                if changed and wanted and self.wants(message):
                    await self.send_json(message)
                last[name] = message
            await asyncio.sleep(every_s)

    def wants(self, message: dict[str, Any]) -> bool:
        return True


class CountersMixin:
    """Watch chains on hosts and receive their agents' counter messages."""

    redis: Any
    prefix: str
    watches: dict[str, list[str]]  # host -> chain keys
    channel_name: str  # the consumer's

    async def open_redis(self) -> None:
        via = await database_sync_to_async(channel)()
        self.prefix = via.prefix
        self.redis_url = via.redis_url
        self.redis = aioredis.Redis.from_url(via.redis_url, socket_connect_timeout=2)

    async def register_watches(self) -> None:
        for host, chains in self.watches.items():
            await wire.register_watch(self.redis, self.prefix, host, self.channel_name, chains)

    async def keep_watching(self) -> None:
        while True:
            await asyncio.sleep(wire.WATCH_REFRESH_S)
            try:
                await self.refresh_watches()
                await self.register_watches()
            except Exception as exc:  # Redis restarting: try again next round
                log.warning("could not refresh watches: %s", exc)

    async def refresh_watches(self) -> None:
        """Recompute what to watch (a group's ports change); default: nothing changes."""

    async def release_watches(self) -> None:
        if not hasattr(self, "redis"):
            return
        try:
            for host in self.watches:
                await wire.release_watch(self.redis, self.prefix, host, self.channel_name)
        except Exception as exc:
            log.warning("could not release watches: %s", exc)
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def pump_counters(self) -> None:
        """Receive the watched hosts' counter messages from this process's hub (one Redis
        subscription and one parse per message for every socket of the process)."""
        counters = hub(self.redis_url)
        joined: set[str] = set()
        try:
            while True:
                wanted = {wire.counters_channel(self.prefix, host) for host in self.watches}
                if wanted != joined:
                    counters.discard(self)
                    for name in wanted:
                        counters.add(name, self)
                    joined = wanted
                counters.ensure_running()
                await asyncio.sleep(wire.WATCH_REFRESH_S)
        finally:
            counters.discard(self)

    async def latest_readings(self, host: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        values = await self.redis.hmget(wire.readings_key(self.prefix, host), keys)
        return {key: json.loads(value) for key, value in zip(keys, values, strict=True) if value}

    async def on_host_counters(self, message: dict[str, Any]) -> None:
        raise NotImplementedError


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None
