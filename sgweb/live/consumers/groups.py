"""`/ws/security-groups/<group_id>`: a group's per-rule hits, and its changes."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from channels.db import database_sync_to_async
from django.conf import settings

from sgweb.live import events
from sgweb.live.consumers.base import CountersMixin, LiveConsumer, parse_uuid
from sgweb.live.hits import (
    filtering_chain_keys,
    group_ports,
    group_rule_hits,
    rule_hits_message,
    sum_readings,
)
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.access import scope
from sgweb.wire import live as wire


class SecurityGroupConsumer(CountersMixin, LiveConsumer):
    """`/ws/security-groups/<group_id>`: `rule-hits` about once a second, summed over every
    port and host using the group; `change` when the group or one of its rules changed (by the
    API, the CLI or another browser)."""

    async def authorise(self, user: Any) -> bool:
        return cast(bool, await database_sync_to_async(self._find)(user))

    def _find(self, user: Any) -> bool:
        wanted = parse_uuid(self.scope["url_route"]["kwargs"]["group_id"])
        if wanted is None:
            return False
        group = scope(user, SecurityGroup.objects.all()).filter(pk=wanted).first()
        if group is None:
            return False
        self.group = group
        return True

    def _layout(self) -> tuple[dict[str, list[str]], list[str], int]:
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
        return group_rule_hits(self.group)

    def wants(self, message: dict[str, Any]) -> bool:
        group_id = str(self.group.pk)
        return message.get("type") == "change" and group_id in (
            message.get("object_id"),
            message.get("security_group_id"),
        )

    def narrow(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """A `changes` message (a bulk create) is sent with this group's changes only (a lone
        one as the `change` it is)."""
        if message.get("type") != "changes":
            return super().narrow(message)
        mine = [change for change in message.get("changes") or () if self.wants(change)]
        if len(mine) == 1:
            return cast(dict[str, Any], mine[0])
        return {**message, "changes": mine} if mine else None

    async def start(self) -> None:
        await self.join(events.project_group(self.group.project_id.hex))
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
