"""One Redis subscription per web process for the agents' counter messages.

An agent publishes one `host-counters` message per host (every watched chain of the host, a
few hundred kilobytes when 50 ports are watched). If each watching socket subscribed and parsed
it itself, one process would parse it 50 times per message, and the last socket would get its
counters only after the 49 others: most of the delay between a packet and the browser. The hub
subscribes once per host channel, parses each message once and hands it to every consumer of
this process that watches the host (they only read it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Protocol

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

POLL_S = 0.25  # how soon a newly wanted channel is subscribed


class CountersListener(Protocol):
    async def on_host_counters(self, message: dict[str, Any]) -> None: ...


class CounterHub:
    """Channel name -> the listeners of this process; one pub/sub connection for all."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.listeners: dict[str, set[CountersListener]] = {}
        self.task: asyncio.Task[None] | None = None

    def add(self, channel: str, listener: CountersListener) -> None:
        self.listeners.setdefault(channel, set()).add(listener)
        self.ensure_running()

    def ensure_running(self) -> None:
        """Start the pump if it is not running (first listener, or Redis went away)."""
        if self.listeners and (self.task is None or self.task.done()):
            self.task = asyncio.ensure_future(self._pump())

    def discard(self, listener: CountersListener) -> None:
        for channel in list(self.listeners):
            self.listeners[channel].discard(listener)
            if not self.listeners[channel]:
                del self.listeners[channel]

    async def _pump(self) -> None:
        client: Any = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
        pubsub = client.pubsub()
        subscribed: set[str] = set()
        try:
            while self.listeners:
                wanted = set(self.listeners)
                if wanted - subscribed:
                    await pubsub.subscribe(*(wanted - subscribed))
                    subscribed |= wanted
                if subscribed - wanted:
                    await pubsub.unsubscribe(*(subscribed - wanted))
                    subscribed &= wanted
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                if message is None or message.get("type") != "message":
                    continue
                channel = message["channel"]
                channel = channel.decode() if isinstance(channel, bytes) else channel
                await self._deliver(channel, json.loads(message["data"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis restarting: the next listener starts a new pump
            log.warning("counter hub stopped: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        for listener in list(self.listeners.get(channel, ())):
            try:
                await listener.on_host_counters(message)
            except Exception:
                log.exception("a counters listener failed")


_HUBS: dict[tuple[int, str], CounterHub] = {}


def hub(redis_url: str) -> CounterHub:
    """The hub of this event loop (one per web process) for a Redis URL."""
    key = (id(asyncio.get_running_loop()), redis_url)
    found = _HUBS.get(key)
    if found is None:
        found = _HUBS[key] = CounterHub(redis_url)
    return found
