"""The one place that tells the outside world about changes: host agents and live browsers.

Actions call these from `transaction.on_commit`, so nothing is sent for a change that was rolled
back. Which hosts a change affects is computed by the caller (see `sgweb.security.impact`).

- `hosts_changed`: the desired firewall of these hosts changed. It hands the names to
  `host_sender`, which `sgweb.hostsync` installs at start-up: publish each host's desired state
  with a new revision (recorded in `Host.desired_revision`) and nudge its agent.
- `send_event`: a live event for browsers. `scope` names who may receive it: "global",
  "project:<project id hex>" or "host:<host name>". `event_sender` is where issue 5 (Channels)
  plugs in its group_send.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import F

log = logging.getLogger(__name__)

HostSender = Callable[[list[str], str], None]
EventSender = Callable[[str, dict[str, Any], str], None]
HostTaskSender = Callable[[str, str, dict[str, Any]], None]


def _no_host_sender(host_names: list[str], reason: str) -> None:
    # With no agents to publish to, still record that the desired state moved on, so the
    # dashboard shows the hosts as behind. A real sender records the revision it publishes.
    from sgweb.networks.models import Host

    Host.objects.filter(name__in=host_names).update(desired_revision=F("desired_revision") + 1)
    log.debug("hosts changed (%s): %s; no host agent dispatch configured", reason, host_names)


def _no_event_sender(kind: str, payload: dict[str, Any], scope: str) -> None:
    log.debug("event %s for %s; no live event sender configured", kind, scope)


def _send_host_task(host: str, task: str, kwargs: dict[str, Any]) -> None:
    from sgweb.hostsync.channel import channel
    from sgweb.hostsync.protocol import host_queue

    channel().send(task, kwargs, host_queue(host))


# Replaced at start-up by the agents' and live modules (and by tests).
host_sender: HostSender = _no_host_sender
event_sender: EventSender = _no_event_sender
host_task_sender: HostTaskSender = _send_host_task


def set_host_sender(sender: HostSender | None) -> None:
    global host_sender
    host_sender = sender or _no_host_sender


def set_event_sender(sender: EventSender | None) -> None:
    global event_sender
    event_sender = sender or _no_event_sender


def hosts_changed(host_names: Iterable[str], reason: str) -> list[str]:
    """Mark the hosts' desired state as changed and ask their agents to converge."""
    names = sorted({name for name in host_names if name})
    if not names:
        return []
    try:
        host_sender(names, reason)
    except Exception:  # a broker outage must not turn a committed change into a 500
        log.exception("could not notify hosts %s (%s)", names, reason)
    send_event("hosts.changed", {"hosts": names, "reason": reason}, scope="global")
    return names


def send_event(kind: str, payload: dict[str, Any], *, scope: str = "global") -> None:
    try:
        event_sender(kind, payload, scope)
    except Exception:
        log.exception("could not send live event %s to %s", kind, scope)


def send_host_task(host: str, task: str, kwargs: dict[str, Any]) -> bool:
    """A one-off task for one host's agent (issue 5: prove a trace); False if it could not go."""
    try:
        host_task_sender(host, task, kwargs)
    except Exception:
        log.exception("could not send %s to host %s", task, host)
        return False
    return True
