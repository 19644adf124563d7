"""Live events to browsers through the Channels layer: `sgweb.dispatch.send_event`'s sender.

Scopes map to groups: "global" -> `live.global`, "project:<hex>" -> `live.project.<hex>`,
"host:<name>" -> `live.host.<name>`, "trace:<id>" -> `live.trace.<id>`, "user:<id>" ->
`live.user.<id>`. Each declared event kind (`sgweb.dispatch.EventKind`) becomes the protocol's
messages here: `host.apply` and `host.drift` become `apply` / `drift` plus `host-status`;
`router.apply` (a network node's router state) becomes `router-apply`; `change`, `changes`
and the trace messages go as they are. A project's changes also go to `live.changes`, for
those who see every project. `drop-flows` (a project's logged flows) goes only to the drop
log's groups: `live.drops.<project hex>` for its members and `live.drops` for those who see
every project (`/ws/drops`). `access.changed` is no message: it makes every socket of
the user check their access again.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from sgweb import dispatch
from sgweb.dispatch import EventKind
from sgweb.tenancy.access import member_project_ids, sees_all_projects

log = logging.getLogger(__name__)

GROUP_GLOBAL = "live.global"
# Every project's changes, for the users who see every project (admins, readers).
GROUP_ALL_CHANGES = "live.changes"
# Every project's logged flows, for the users who see every project.
GROUP_ALL_DROPS = "live.drops"


def _safe(text: str) -> str:
    # Channels group names: ASCII letters, digits, hyphens, periods, underscores, < 100 chars.
    cleaned = "".join(c if c.isalnum() or c in "-._" else "_" for c in text)
    if len(cleaned) > 80:
        cleaned = cleaned[:60] + hashlib.sha1(text.encode()).hexdigest()[:16]
    return cleaned


def host_group(host: str) -> str:
    return "live.host." + _safe(host)


def project_group(project_hex: str) -> str:
    return "live.project." + _safe(project_hex)


def drops_group(project_hex: str) -> str:
    return "live.drops." + _safe(project_hex)


def drop_groups(user: Any) -> list[str]:
    """The groups whose `drop-flows` messages a user may receive."""
    if sees_all_projects(user):
        return [GROUP_ALL_DROPS]
    return [drops_group(project_id.hex) for project_id in member_project_ids(user)]


def trace_group(trace_id: str) -> str:
    return "live.trace." + _safe(str(trace_id))


def user_group(user_id: int) -> str:
    """Every live socket of one user, whatever it watches: told when their access changes."""
    return f"live.user.{int(user_id)}"


def group_for_scope(scope: str) -> str:
    if scope == "global":
        return GROUP_GLOBAL
    kind, _, value = scope.partition(":")
    if kind == "host":
        return host_group(value)
    if kind == "project":
        return project_group(value)
    if kind == "trace":
        return trace_group(value)
    if kind == "user":
        return user_group(int(value))
    raise ValueError(f"unknown event scope {scope!r}")


def _unix(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def host_status_message(payload: dict[str, Any], alive: bool = True) -> dict[str, Any]:
    return {
        "type": "host-status",
        "host": payload.get("host"),
        "status": payload.get("status") or "unknown",
        "alive": alive,
        "desired_revision": payload.get("desired_revision"),
        "applied_revision": payload.get("applied_revision"),
        "last_apply_at": _unix(payload.get("last_apply_at")),
        "last_apply_duration_ms": payload.get("last_apply_duration_ms"),
        "last_error": payload.get("last_error") or "",
    }


def change_groups(user: Any) -> list[str]:
    """The groups whose `change` messages a user may receive."""
    if sees_all_projects(user):
        return [GROUP_ALL_CHANGES]
    return [project_group(project_id.hex) for project_id in member_project_ids(user)]


def _apply_message(payload: dict[str, Any]) -> dict[str, Any]:
    report = payload.get("report") or {}
    return {
        "type": "apply",
        "host": payload.get("host"),
        "revision": report.get("revision", payload.get("applied_revision")),
        "ok": bool(report.get("ok", not payload.get("last_error"))),
        "duration_ms": report.get("duration_ms", payload.get("last_apply_duration_ms")),
        "error": report.get("error") or "",
        "at": _unix(report.get("finished_at")) or time.time(),
    }


def router_apply_message(report: dict[str, Any]) -> dict[str, Any]:
    """A network node's router apply report as the pages follow it (no `host-status`: the
    node's port revision did not move)."""
    at = _unix(report.get("kernel_applied_at"))
    if at is None and report.get("started_at") is not None:
        at = (_unix(report.get("started_at")) or 0.0) + float(report.get("duration_ms") or 0) / 1000
    return {
        "type": "router-apply",
        "host": report.get("host"),
        "revision": report.get("revision"),
        "ok": bool(report.get("ok")),
        "duration_ms": report.get("duration_ms"),
        "error": "" if report.get("ok") else str(report.get("error") or "apply failed"),
        "at": at or time.time(),
    }


def _drift_message(payload: dict[str, Any]) -> dict[str, Any]:
    report = payload.get("report") or {}
    words = [str(line) for line in report.get("words") or ()]
    found = report.get("found") or {}
    counts = ", ".join(f"{key}: {len(value)}" for key, value in sorted(found.items()) if value)
    return {
        "type": "drift",
        "host": payload.get("host"),
        "detail": " ".join(words) or counts or "no drift; alerts cleared",
        "words": words,
        "alerts": [str(line) for line in report.get("alerts") or ()],
        "repairs": [str(line) for line in report.get("repairs") or ()],
        "repaired": bool(report.get("repaired")),
        "at": _unix(report.get("detected_at")) or time.time(),
    }


def protocol_messages(kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The protocol's messages for one dispatched event (`dispatch.EventKind`)."""
    if kind == EventKind.ACCESS_CHANGED:
        return []  # consumed by the sockets themselves (`LiveConsumer.live_access`)
    if kind == EventKind.HOST_APPLY:
        return [_apply_message(payload), host_status_message(payload)]
    if kind == EventKind.HOST_DRIFT:
        return [_drift_message(payload), host_status_message(payload)]
    if kind == EventKind.ROUTER_APPLY:
        return [router_apply_message(payload)]
    if kind in (
        EventKind.CHANGE,
        EventKind.CHANGES,
        EventKind.TRACE_PACKET,
        EventKind.TRACE_RESULT,
        EventKind.DROP_FLOWS,
    ):
        return [payload]
    raise ValueError(f"undeclared live event kind {kind!r}")


def channels_sender(kind: str, payload: dict[str, Any], scope: str) -> None:
    """Send each protocol message to the scope's group, and host messages to the host's group
    too (a port page listens there for its host's applies). Nothing goes out with
    `SGWEB_LIVE_EVENTS` off (the test process, unless a test turns it on)."""
    if not settings.SGWEB_LIVE_EVENTS:
        return
    if kind == EventKind.ACCESS_CHANGED:
        # Not a protocol message: the user's sockets check their access again (`live.access`).
        layer = get_channel_layer()
        if layer is not None:
            event = {"type": "live.access", "user_id": payload.get("user_id")}
            async_to_sync(layer.group_send)(group_for_scope(scope), event)
        return
    messages = protocol_messages(kind, payload)
    if not messages:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    groups = [group_for_scope(scope)]
    if kind == EventKind.DROP_FLOWS:
        # Not the project's group (the overview's changes): only the drop log's sockets.
        kind_of, _, project_hex = scope.partition(":")
        groups = [GROUP_ALL_DROPS] + ([drops_group(project_hex)] if kind_of == "project" else [])
    host = payload.get("host")
    host_kinds = (EventKind.HOST_APPLY, EventKind.HOST_DRIFT, EventKind.ROUTER_APPLY)
    if kind in host_kinds and host and scope != f"host:{host}":
        groups.append(host_group(str(host)))
    if kind in (EventKind.CHANGE, EventKind.CHANGES) and scope != "global":
        groups.append(GROUP_ALL_CHANGES)
    for message in messages:
        for group in groups:
            async_to_sync(layer.group_send)(group, {"type": "live.message", "message": message})


def install() -> None:
    dispatch.install_event_sender(channels_sender)
