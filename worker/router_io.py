"""The network node agent's connections: its Redis keys, and the plumbing of router namespaces.

`RouterStore` is what `worker.routers.RouterAgent` reads router states from and reports to
(`sgweb.wire.routers` keys); `make_plumber` gives it Neutron's Linux-bridge plumbing
(`sgweb.kernel.routerns`) with this host's bridges.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

import redis

from sgweb.firewall.fwaas.model import DEVICE_ID_CHARS, RouterInterface, RouterState
from sgweb.kernel.routerns import plumb_router, router_ports, unplumb_router
from sgweb.kernel.runner import CommandRunner
from sgweb.wire import routers as wire
from sgweb.wire import sync as protocol

# Makes a router's namespace and interfaces exist before its table goes in (the L3 agent's
# plumbing, `sgweb.kernel.routerns`); None where something else plumbs (tests, a lab that
# builds its routers up front).
Plumber = Callable[[RouterState, str], None]


class RouterStore(Protocol):
    def desired_revision(self) -> int | None: ...

    def fetch(self) -> protocol.Desired | None: ...

    def set_applied(self, report: dict[str, Any]) -> None: ...


class RedisRouterStore:
    def __init__(self, url: str, host: str, prefix: str) -> None:
        self.keys = wire.router_keys(host, prefix)
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=10
        )

    def desired_revision(self) -> int | None:
        value = self.client.get(self.keys.desired_revision)
        return int(value) if value is not None else None

    def fetch(self) -> protocol.Desired | None:
        raw = self.client.get(self.keys.desired)
        return wire.parse_desired(raw) if raw is not None else None

    def set_applied(self, report: dict[str, Any]) -> None:
        self.client.set(self.keys.applied, json.dumps(report, sort_keys=True))


BRIDGE_PREFIX = "brq"  # Neutron's Linux-bridge agent: brq + the network id's first 11 characters


def make_plumber(runner: CommandRunner, bridge_netns: str | None, bridge: str | None) -> Plumber:
    """The L3 agent's plumbing for `RouterAgent`: each interface on its network's bridge."""

    def bridge_for(interface: RouterInterface) -> str:
        return bridge or BRIDGE_PREFIX + interface.network_id[:DEVICE_ID_CHARS]

    def plumb(state: RouterState, netns: str) -> None:
        plumb_router(runner, bridge_netns, netns, router_ports(state.router, bridge_for))

    return plumb


def unplumb(runner: CommandRunner, netns: str) -> None:
    unplumb_router(runner, netns)
