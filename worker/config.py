"""The agent's configuration: environment variables only (no settings module, no database).

* ``SGWEB_HOST``               the compute host's name; the agent consumes queue ``host.<name>``
* ``SGWEB_BROKER_URL``         Celery broker (Redis); falls back to ``REDIS_URL``
* ``SGWEB_REDIS_URL``          where desired states and heartbeats live; falls back to the broker
* ``SGWEB_NETNS``              the network namespace whose firewall this agent manages (optional;
                               without it the agent manages the namespace it runs in)
* ``SGWEB_KEY_PREFIX``         Redis key prefix (default ``sgweb``)
* ``SGWEB_CONTROL_QUEUE``      where reports go (default ``control``)
* ``SGWEB_POLL_INTERVAL_S``    how often the agent checks Redis for a revision it missed (5)
* ``SGWEB_DRIFT_INTERVAL_S``   how often it checks for drift (3; 0: off). A check that finds the
                               nf_tables generation and the bridge sysctls as they were costs
                               ~0.1 ms and reads nothing else; otherwise it reads the rules
* ``SGWEB_DRIFT_FULL_INTERVAL_S`` how often it reads everything anyway (60): ipset members do not
                               move the generation
* ``SGWEB_ACCOUNTING_INTERVAL_S`` how often it reads every rule counter and sends the deltas
                               to the control plane (10; 0: off), see `sgweb.wire.accounting`
* ``SGWEB_ACCOUNTING_BUDGET_MS`` how long one reading may take (40; 0: no limit); the chains
                               it has no time for are read first by the next one
* ``SGWEB_PACKET_LOG_INTERVAL_S`` how often the drop log's flows are sent (0.5; 0: the agent
                               receives no logged packets at all), see `worker.packetlog`
* ``SGWEB_PACKET_LOG_OPEN_FLOWS`` open flows the agent keeps at most (10000); a port at most a
                               quarter of them. What finds no room is shed and counted
* ``SGWEB_OWNER_PID``          exit when this process ends (test harnesses set it; optional)
* ``SGWEB_ROUTER_NETNS_PREFIX`` put before ``qrouter-<id>`` in router namespace names (default
                               none); a plumbing agent's start removes the ``<prefix>qrouter-*``
                               namespaces its state does not name, so each network node sharing
                               a machine (a lab) needs a prefix of its own, see `worker.routers`
* ``SGWEB_ROUTER_PLUMB``       1 (default): the agent creates router namespaces and their qr-
                               interfaces itself, as Neutron's L3 agent; 0: something else does
* ``SGWEB_ROUTER_BRIDGE``      the bridge every router interface joins (a lab's one segment);
                               default Neutron's ``brq`` + the network id's first 11 characters
* ``SGWEB_ROUTER_BRIDGE_NETNS`` the namespace holding those bridges (default ``SGWEB_NETNS``)
* ``SGWEB_LOG_LEVEL``          the agent's log level (default ``INFO``)

Read once, here; the rest of the agent gets an `AgentConfig`. The names shared with the control
plane (queues, key layout) come from `sgweb.wire`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sgweb.wire import accounting, packetlog
from sgweb.wire import sync as protocol


class ConfigError(ValueError):
    pass


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is below {minimum}")
    return value


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level() -> str:
    raw = os.environ.get("SGWEB_LOG_LEVEL", "").strip().upper()
    if not raw:
        return "INFO"
    if raw not in LOG_LEVELS:
        raise ConfigError(f"SGWEB_LOG_LEVEL={raw!r} is not one of {', '.join(LOG_LEVELS)}")
    return raw


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a flag (1/0)")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    host: str
    broker_url: str
    redis_url: str
    netns: str | None
    key_prefix: str
    control_queue: str
    poll_interval_s: float
    drift_interval_s: float
    drift_full_interval_s: float = 60.0
    owner_pid: int | None = None
    accounting_interval_s: float = accounting.DEFAULT_INTERVAL_S
    accounting_budget_ms: float = accounting.DEFAULT_BUDGET_MS
    heartbeat_interval_s: float = protocol.HEARTBEAT_INTERVAL_S
    packet_log_interval_s: float = packetlog.SEND_INTERVAL_S
    packet_log_max_flows: int = packetlog.MAX_OPEN_FLOWS
    router_netns_prefix: str = ""
    router_plumb: bool = True
    router_bridge: str | None = None
    router_bridge_netns: str | None = None
    log_level: str = "INFO"

    @property
    def queue(self) -> str:
        return protocol.host_queue(self.host)

    @classmethod
    def from_env(cls) -> AgentConfig:
        host = os.environ.get("SGWEB_HOST", "").strip() or socket.gethostname()
        key_prefix = os.environ.get("SGWEB_KEY_PREFIX", protocol.DEFAULT_KEY_PREFIX)
        protocol.host_keys(host, key_prefix)  # validates the name
        broker = (
            os.environ.get("SGWEB_BROKER_URL")
            or os.environ.get("REDIS_URL")
            or "redis://127.0.0.1:6379/0"
        )
        return cls(
            host=host,
            broker_url=broker,
            redis_url=os.environ.get("SGWEB_REDIS_URL") or broker,
            netns=os.environ.get("SGWEB_NETNS") or None,
            key_prefix=key_prefix,
            control_queue=os.environ.get("SGWEB_CONTROL_QUEUE", protocol.DEFAULT_CONTROL_QUEUE),
            poll_interval_s=_float("SGWEB_POLL_INTERVAL_S", 5.0),
            drift_interval_s=_float("SGWEB_DRIFT_INTERVAL_S", 3.0),
            drift_full_interval_s=_float("SGWEB_DRIFT_FULL_INTERVAL_S", 60.0),
            owner_pid=protocol.parse_owner_pid(os.environ.get("SGWEB_OWNER_PID")),
            accounting_interval_s=_float(
                "SGWEB_ACCOUNTING_INTERVAL_S", accounting.DEFAULT_INTERVAL_S
            ),
            accounting_budget_ms=_float("SGWEB_ACCOUNTING_BUDGET_MS", accounting.DEFAULT_BUDGET_MS),
            packet_log_interval_s=_float("SGWEB_PACKET_LOG_INTERVAL_S", packetlog.SEND_INTERVAL_S),
            packet_log_max_flows=_int("SGWEB_PACKET_LOG_OPEN_FLOWS", packetlog.MAX_OPEN_FLOWS),
            router_netns_prefix=os.environ.get("SGWEB_ROUTER_NETNS_PREFIX", ""),
            router_plumb=_flag("SGWEB_ROUTER_PLUMB", True),
            router_bridge=os.environ.get("SGWEB_ROUTER_BRIDGE") or None,
            router_bridge_netns=(
                os.environ.get("SGWEB_ROUTER_BRIDGE_NETNS") or os.environ.get("SGWEB_NETNS") or None
            ),
            log_level=_log_level(),
        )
