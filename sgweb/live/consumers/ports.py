"""`/ws/ports/<port_id>`: a port's chains and their counters."""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from sgweb.live import events
from sgweb.live.chains import port_chains
from sgweb.live.consumers.base import CountersMixin, LiveConsumer, parse_uuid
from sgweb.networks.models import Port
from sgweb.tenancy.access import scope
from sgweb.wire import live as wire


class PortConsumer(CountersMixin, LiveConsumer):
    """`/ws/ports/<port_id>`: `chains`, then `counters` about once a second, plus the host's
    `host-status` / `apply`."""

    async def authorise(self, user: Any) -> bool:
        self.message = await database_sync_to_async(self._chains)(user)
        return self.message is not None

    def _chains(self, user: Any) -> dict[str, Any] | None:
        wanted = parse_uuid(self.scope["url_route"]["kwargs"]["port_id"])
        if wanted is None:
            return None
        port = scope(user, Port.objects.select_related("host")).filter(pk=wanted).first()
        return port_chains(port) if port is not None and wanted else None

    async def still_allowed(self, user: Any) -> bool:
        # Only the visibility (the first `chains` message compiled the host; no need again).
        return bool(await database_sync_to_async(self._visible)(user))

    def _visible(self, user: Any) -> bool:
        return scope(user, Port.objects.all()).filter(pk=self.message["port_id"]).exists()

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
