"""The agent's configuration: environment variables only (no settings module, no database).

* ``SGWEB_HOST``               the compute host's name; the agent consumes queue ``host.<name>``
* ``SGWEB_BROKER_URL``         Celery broker (Redis); falls back to ``REDIS_URL``
* ``SGWEB_REDIS_URL``          where desired states and heartbeats live; falls back to the broker
* ``SGWEB_NETNS``              the network namespace whose firewall this agent manages (optional;
                               without it the agent manages the namespace it runs in)
* ``SGWEB_KEY_PREFIX``         Redis key prefix (default ``sgweb``)
* ``SGWEB_CONTROL_QUEUE``      where reports go (default ``control``)
* ``SGWEB_POLL_INTERVAL_S``    how often the agent checks Redis for a revision it missed (5)
* ``SGWEB_DRIFT_INTERVAL_S``   how often it compares the kernel with what it applied (30; 0: off)
* ``SGWEB_ACCOUNTING_INTERVAL_S`` how often it reads every rule counter and sends the deltas
                               to the control plane (10; 0: off), see `sgweb.wire.accounting`
* ``SGWEB_OWNER_PID``          exit when this process ends (test harnesses set it; optional)

Read once, here; the rest of the agent gets an `AgentConfig`. The names shared with the control
plane (queues, key layout) come from `sgweb.wire`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from sgweb.wire import accounting
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
    owner_pid: int | None = None
    accounting_interval_s: float = accounting.DEFAULT_INTERVAL_S
    heartbeat_interval_s: float = protocol.HEARTBEAT_INTERVAL_S

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
            drift_interval_s=_float("SGWEB_DRIFT_INTERVAL_S", 30.0),
            owner_pid=protocol.parse_owner_pid(os.environ.get("SGWEB_OWNER_PID")),
            accounting_interval_s=_float(
                "SGWEB_ACCOUNTING_INTERVAL_S", accounting.DEFAULT_INTERVAL_S
            ),
        )
