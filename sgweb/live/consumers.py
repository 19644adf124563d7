"""WebSocket consumers of the live protocol (see PROTOCOL.md).

Every consumer accepts, then checks who is asking: an anonymous user is closed with 4401, one
who may not see the object with 4404 (like a missing one, so ids cannot be probed).

Counters travel on plain Redis pub/sub (`wire.counters_channel`), because the agents publish
there without Django; each watching consumer subscribes to its hosts' channels itself and keeps
its watch registered (`wire.register_watch`) while connected. Events (applies, drift, traces)
come through the Channels layer's groups (`sgweb.live.events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from sgweb.live import events
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
        self.tasks: list[asyncio.Task] = []
        self.closed = False
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            allowed = await self.authorise(user)
        except Exception:
            log.exception("authorising %s failed", self.scope.get("path"))
            allowed = False
        if not allowed:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        await self.start()

    async def authorise(self, user: Any) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        """Join groups, send the first messages, start background work."""

    async def join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.append(group)

    def spawn(self, coroutine: Any) -> None:
        self.tasks.append(asyncio.ensure_future(coroutine))

    async def disconnect(self, code: int) -> None:
        self.closed = True
        for task in getattr(self, "tasks", []):
            task.cancel()
        for task in getattr(self, "tasks", []):
            with contextlib.suppress(BaseException):
                await task
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.stop()

    async def stop(self) -> None:
        """Release what `start` took (watches)."""

    async def live_message(self, event: dict[str, Any]) -> None:
        if self.wants(event["message"]):
            await self.send_json(event["message"])

    async def watch_status(self, hosts: list[str] | None, every_s: float = STATUS_EVERY_S) -> None:
        """Send `host-status` whenever a host's status or liveness changes: an agent that dies
        sends nothing, so its heartbeat expiring is only seen by looking. None: every host."""
        last: dict[str, dict[str, Any]] = {}
        while True:
            statuses = await database_sync_to_async(host_statuses)(hosts)
            for name, message in statuses.items():
                changed = last.get(name) != message
                if changed and (name in last or hosts is not None) and self.wants(message):
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

    async def open_redis(self) -> None:
        from sgweb.hostsync.channel import channel

        via = await database_sync_to_async(channel)()
        self.prefix = via.prefix
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
        pubsub = self.redis.pubsub()
        subscribed: set[str] = set()
        try:
            while True:
                wanted = {wire.counters_channel(self.prefix, host) for host in self.watches}
                if wanted - subscribed:
                    await pubsub.subscribe(*(wanted - subscribed))
                    subscribed |= wanted
                if subscribed - wanted:
                    await pubsub.unsubscribe(*(subscribed - wanted))
                    subscribed &= wanted
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                await self.on_host_counters(json.loads(message["data"]))
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def latest_readings(self, host: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        values = await self.redis.hmget(wire.readings_key(self.prefix, host), keys)
        return {key: json.loads(value) for key, value in zip(keys, values, strict=True) if value}

    async def on_host_counters(self, message: dict[str, Any]) -> None:
        raise NotImplementedError


class PortConsumer(CountersMixin, LiveConsumer):
    """`/ws/ports/<port_id>`: `chains`, then `counters` about once a second, plus the host's
    `host-status` / `apply`."""

    async def authorise(self, user: Any) -> bool:
        self.message = await database_sync_to_async(self._chains)(user)
        return self.message is not None

    def _chains(self, user: Any) -> dict[str, Any] | None:
        from sgweb.live.chains import port_chains
        from sgweb.networks.models import Port
        from sgweb.tenancy.access import scope

        wanted = _uuid(self.scope["url_route"]["kwargs"]["port_id"])
        port = scope(user, Port.objects.select_related("host")).filter(pk=wanted).first()
        return port_chains(port) if port is not None and wanted else None

    async def start(self) -> None:
        message = self.message
        self.host = message["host"]
        self.port_id = message["port_id"]
        self.keys = {
            wire.chain_key(c["family"], c["table"], c["name"]): c for c in message["chains"]
        }
        self.watches = {self.host: sorted(self.keys)} if self.host and self.keys else {}
        if self.host:
            await self.join(events.host_group(self.host))
        if self.watches:
            # Registered before the first message, so the agent is reading by the time the
            # page has drawn the chains.
            await self.open_redis()
            await self.register_watches()
        await self.send_json(message)
        if self.host:
            self.spawn(self.watch_status([self.host]))
        if not self.watches:
            return
        readings = await self.latest_readings(self.host, sorted(self.keys))
        if readings:
            at = max(float(r.get("at") or 0) for r in readings.values())
            await self.send_json(self._counters(readings, at))
        self.spawn(self.keep_watching())
        self.spawn(self.pump_counters())

    async def stop(self) -> None:
        await self.release_watches()

    def _counters(self, readings: dict[str, dict[str, Any]], at: float) -> dict[str, Any]:
        chains = []
        for key, reading in readings.items():
            family, _table, name = wire.split_chain_key(key)
            rules = [
                {k: rule[k] for k in ("position", "packets", "bytes", "pps", "bps") if k in rule}
                for rule in reading.get("rules", ())
            ]
            chains.append({"name": name, "family": family, "rules": rules})
        return {
            "type": "counters",
            "port_id": self.port_id,
            "host": self.host,
            "at": at,
            "chains": chains,
        }

    async def on_host_counters(self, message: dict[str, Any]) -> None:
        readings = {c["key"]: c for c in message.get("chains", ()) if c.get("key") in self.keys}
        if readings:
            await self.send_json(self._counters(readings, float(message.get("at") or time.time())))


class SecurityGroupConsumer(CountersMixin, LiveConsumer):
    """`/ws/security-groups/<group_id>`: `rule-hits` about once a second, summed over every
    port and host using the group."""

    async def authorise(self, user: Any) -> bool:
        return await database_sync_to_async(self._find)(user)

    def _find(self, user: Any) -> bool:
        from sgweb.security.models import SecurityGroup
        from sgweb.tenancy.access import scope

        wanted = _uuid(self.scope["url_route"]["kwargs"]["group_id"])
        self.group = scope(user, SecurityGroup.objects.all()).filter(pk=wanted).first()
        return self.group is not None and wanted is not None

    def _layout(self) -> tuple[dict[str, list[str]], list[str], int]:
        from django.conf import settings

        from sgweb.live.hits import filtering_chain_keys, group_ports

        hosts = group_ports(self.group)
        prefix = settings.FIREWALL_CHAIN_PREFIX
        watches = {host: filtering_chain_keys(prefix, ids) for host, ids in hosts.items()}
        rule_ids = [
            str(rule_id)
            for rule_id in self.group.rules.order_by("created_at", "id").values_list(
                "id", flat=True
            )
        ]
        return watches, rule_ids, sum(len(ids) for ids in hosts.values())

    def _first(self) -> dict[str, Any]:
        from sgweb.live.hits import group_rule_hits

        return group_rule_hits(self.group)

    async def start(self) -> None:
        self.readings: dict[tuple[str, str], dict[str, Any]] = {}
        self.watches, self.rule_ids, self.ports = await database_sync_to_async(self._layout)()
        await self.send_json(await database_sync_to_async(self._first)())
        await self.open_redis()
        for host, keys in self.watches.items():
            for key, reading in (await self.latest_readings(host, keys)).items():
                self.readings[(host, key)] = reading
        await self.register_watches()
        self.spawn(self.keep_watching())
        self.spawn(self.pump_counters())
        self.spawn(self.tick())

    async def refresh_watches(self) -> None:
        watches, self.rule_ids, self.ports = await database_sync_to_async(self._layout)()
        for host in set(self.watches) - set(watches):
            await wire.release_watch(self.redis, self.prefix, host, self.channel_name)
        self.watches = watches

    async def stop(self) -> None:
        await self.release_watches()

    async def on_host_counters(self, message: dict[str, Any]) -> None:
        host = message.get("host", "")
        wanted = set(self.watches.get(host, ()))
        for chain in message.get("chains", ()):
            if chain.get("key") in wanted:
                self.readings[(host, chain["key"])] = chain

    async def tick(self) -> None:
        from sgweb.live.hits import rule_hits_message, sum_readings

        while True:
            await asyncio.sleep(wire.TICK_S)
            # One set per host a tick, not one per reading: a group on a 1000-port host has
            # thousands of watched chains.
            watched = {host: set(keys) for host, keys in self.watches.items()}
            current = [
                reading
                for (host, key), reading in self.readings.items()
                if key in watched.get(host, ())
            ]
            hits = []
            if self.rule_ids:
                hits = await self.redis.hmget(wire.last_hit_key(self.prefix), self.rule_ids)
            last = {
                rule_id: (float(value) if value is not None else None)
                for rule_id, value in zip(self.rule_ids, hits, strict=True)
            }
            await self.send_json(
                rule_hits_message(
                    str(self.group.pk),
                    self.rule_ids,
                    sum_readings(current, self.rule_ids),
                    last,
                    self.ports,
                    time.time(),
                )
            )


class HostConsumer(LiveConsumer):
    """`/ws/hosts/<name>`: `host-status`, `apply`, `drift` for one host."""

    async def authorise(self, user: Any) -> bool:
        return await database_sync_to_async(self._visible)(user)

    def _visible(self, user: Any) -> bool:
        from sgweb.networks.models import Host

        self.host = Host.objects.filter(name=self.scope["url_route"]["kwargs"]["name"]).first()
        return self.host is not None and self.host.name in visible_host_names(user, [self.host])

    async def start(self) -> None:
        await self.join(events.host_group(self.host.name))
        self.spawn(self.watch_status([self.host.name]))


class EventsConsumer(LiveConsumer):
    """`/ws/events`: host events for every host the user may see."""

    async def authorise(self, user: Any) -> bool:
        self.user = user
        self.visible = await database_sync_to_async(visible_host_names)(user, None)
        return True

    async def start(self) -> None:
        await self.join(events.GROUP_GLOBAL)
        # Changes only: the page drew every host's status already.
        self.spawn(self.watch_status(None, every_s=5.0))

    def wants(self, message: dict[str, Any]) -> bool:
        return self.visible is None or message.get("host") in self.visible


class TraceConsumer(LiveConsumer):
    """`/ws/traces/<trace_id>`: the trace's messages so far, then live ones."""

    async def authorise(self, user: Any) -> bool:
        return await database_sync_to_async(self._find)(user)

    def _find(self, user: Any) -> bool:
        from sgweb.tenancy.errors import NotFound
        from sgweb.traces.actions import get_trace

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
        from sgweb.traces.models import Trace

        return list(Trace.objects.values_list("events", flat=True).get(pk=self.trace.pk))

    async def _send_once(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= self.sent_seq:
                return
            self.sent_seq = seq
        await self.send_json(message)

    async def live_message(self, event: dict[str, Any]) -> None:
        await self._send_once(event["message"])


def visible_host_names(user: Any, hosts: list[Any] | None) -> set[str] | None:
    """The hosts a user may watch: every one for admins and readers (None: no filter), else
    those holding a port of the user's projects."""
    from sgweb.networks.models import Port
    from sgweb.tenancy.access import member_project_ids, sees_all_projects

    if sees_all_projects(user):
        return None if hosts is None else {host.name for host in hosts}
    ports = Port.objects.filter(project_id__in=member_project_ids(user), host__isnull=False)
    if hosts is not None:
        ports = ports.filter(host__in=hosts)
    return set(ports.values_list("host__name", flat=True).distinct())


def host_statuses(names: list[str] | None) -> dict[str, dict[str, Any]]:
    """`host-status` messages from the database and the agents' heartbeats (one MGET)."""
    from sgweb.hostsync.status import host_liveness
    from sgweb.networks.models import Host

    hosts = Host.objects.all() if names is None else Host.objects.filter(name__in=names)
    hosts = list(hosts.order_by("name"))
    try:
        live = host_liveness([host.name for host in hosts])
        alive = {name: entry.alive for name, entry in live.items()}
    except Exception:
        alive = {}
    result = {}
    for host in hosts:
        up = alive.get(host.name, False)
        result[host.name] = events.host_status_message(
            {
                "host": host.name,
                "status": host.status if up else "down",
                "desired_revision": host.desired_revision,
                "applied_revision": host.applied_revision,
                "last_apply_at": host.last_apply_at.timestamp() if host.last_apply_at else None,
                "last_apply_duration_ms": host.last_apply_duration_ms,
                "last_error": host.last_error,
            },
            up,
        )
    return result
