"""The agent's ear: its host's nudge channels in Redis (`sgweb.wire.sync`, `sgweb.wire.routers`).

A publish PUBLISHes "revision N is stored" on each host's channel, a network node's router
publish on the node's router channel; this thread subscribes to both of its own (one connection;
the port and router agents share one lock anyway) and converges that channel's agent on each
nudge (`Agent.sync`, `RouterAgent.sync`: a revision already applied is a no-op without touching
Redis, otherwise the newest stored state is read, so nudges from several control workers
arriving in any order never apply an older revision, and a burst coalesces).

Pub/sub keeps nothing for a listener that is not connected: whenever the subscription is
(re)made, the agent reads the newest stored state once, which covers whatever was published
while it was away; the maintenance loop's poll and the reconciler's queued nudge cover the rest.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import redis

from sgweb.wire import routers as router_wire
from sgweb.wire import sync as protocol

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0


class Syncing(Protocol):
    """What the listener needs of `worker.agent.Agent` (and `worker.routers.RouterAgent`)."""

    applied: Any

    def sync(self, revision: int | None = None, reason: str = "") -> Any: ...


class NudgeListener(threading.Thread):
    def __init__(
        self,
        agent: Syncing,
        url: str,
        host: str,
        prefix: str,
        *,
        routers: Syncing | None = None,
        wait_s: float = 1.0,
    ) -> None:
        super().__init__(name="sgweb-nudges", daemon=True)
        self.url = url
        self.agents: dict[str, Syncing] = {protocol.host_keys(host, prefix).nudge: agent}
        if routers is not None:  # the network node's side: its router channel
            self.agents[router_wire.router_keys(host, prefix).nudge] = routers
        self.wait_s = wait_s
        self.stopping = threading.Event()
        self.subscribed = threading.Event()  # for tests: every subscription is in place
        self.heard = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(*self.agents)
                self._listen(pubsub)
            except (redis.RedisError, OSError) as exc:  # Redis restarting: subscribe again
                log.warning("nudge channel: %s; subscribing again", exc)
                self.stopping.wait(RETRY_AFTER_S)
            except Exception:  # a sync that failed oddly must not deafen the agent
                log.exception("nudge channel: converging failed")
                self.stopping.wait(RETRY_AFTER_S)
            finally:
                self.subscribed.clear()
                pubsub.close()
                client.close()

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        while not self.stopping.is_set():
            message = pubsub.get_message(timeout=self.wait_s)
            if message is None:
                continue
            channel = message["channel"]
            agent = self.agents.get(channel.decode() if isinstance(channel, bytes) else channel)
            if agent is None:
                continue
            if message["type"] == "subscribe":
                if message["data"] == len(self.agents):
                    self.subscribed.set()
                # Nudges sent while we were not subscribed are lost: read the newest state
                # once. Before the first apply, the start-up sync (maintenance) does it.
                if agent.applied is not None:
                    agent.sync(None, "nudge channel subscribed")
            elif message["type"] == "message":
                self.heard += 1
                revision = protocol.parse_nudge(message["data"])
                agent.sync(revision, f"nudged (revision {revision})")

    def stop(self) -> None:
        self.stopping.set()


def start(
    agent: Syncing, url: str, host: str, prefix: str, *, routers: Syncing | None = None
) -> NudgeListener:
    listener = NudgeListener(agent, url, host, prefix, routers=routers)
    listener.start()
    return listener
