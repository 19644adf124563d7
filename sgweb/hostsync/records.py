"""Writing what agents report into the database, and telling browsers about it."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import transaction
from django.db.models import F, Q

from sgweb import dispatch
from sgweb.hostsync.models import HostEvent, HostEventKind
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host

log = logging.getLogger(__name__)

EVENTS_KEPT_PER_HOST = 500


def _when(value: Any) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (TypeError, ValueError):
        return dt.datetime.now(tz=dt.UTC)


def _prune(host: Host) -> None:
    cutoff = (
        HostEvent.objects.filter(host=host)
        .order_by("-at", "-id")
        .values_list("id", flat=True)[EVENTS_KEPT_PER_HOST : EVENTS_KEPT_PER_HOST + 1]
    )
    oldest_kept = next(iter(cutoff), None)
    if oldest_kept is not None:
        HostEvent.objects.filter(host=host, id__lte=oldest_kept).delete()


def record_apply(report: dict[str, Any]) -> None:
    # One short write transaction per report: fewer lock round trips for SQLite deployments.
    with transaction.atomic():
        host = _record_apply(report)
    if host is not None:
        dispatch.send_event(
            dispatch.EventKind.HOST_APPLY, _host_payload(host, report), scope="global"
        )


def _record_apply(report: dict[str, Any]) -> Host | None:
    host = Host.objects.filter(name=report.get("host")).first()
    if host is None:
        log.info("apply report for unknown host %r ignored", report.get("host"))
        return None
    ok = bool(report.get("ok"))
    revision = int(report.get("revision") or 0)
    finished = _when(report.get("finished_at"))
    duration_ms = int(report.get("duration_ms") or 0)
    # Reports can arrive out of order when several control workers run: an older report may
    # add to the history but must not overwrite the host's current state.
    current = Host.objects.filter(
        Q(pk=host.pk), Q(last_apply_at__isnull=True) | Q(last_apply_at__lte=finished)
    )
    if ok:
        digest = str(report.get("digest") or "")
        current.update(
            last_apply_at=finished,
            last_apply_duration_ms=duration_ms,
            last_error="",
            applied_revision=revision,
            applied_digest=digest,
        )
        Host.objects.filter(pk=host.pk, applied_revision__lt=revision).update(
            applied_revision=revision, applied_digest=digest
        )
        # In sync only if nothing newer was published meanwhile and the agent applied the very
        # state published (compared in the database, so a racing publish cannot be overwritten).
        same = Q(applied_revision__gte=F("desired_revision")) & (
            Q(desired_digest="") | Q(applied_digest=F("desired_digest"))
        )
        Host.objects.filter(Q(pk=host.pk), same).update(status=HostStatus.IN_SYNC)
        Host.objects.filter(Q(pk=host.pk), ~same).update(status=HostStatus.SYNCING)
    else:
        error = str(report.get("error") or "apply failed")
        line = report.get("error_line")
        if line:
            error = f"{error}\noffending line: {line}"
        current.update(
            last_apply_at=finished,
            last_apply_duration_ms=duration_ms,
            last_error=error,
            status=HostStatus.FAILED,
        )
    if report.get("mode") != "unchanged" or not ok:
        if not ok:
            kind = HostEventKind.APPLY_FAILED
        elif report.get("first"):
            kind = HostEventKind.AGENT_START
        else:
            kind = HostEventKind.APPLY
        HostEvent.objects.create(
            host=host,
            kind=kind,
            revision=revision,
            duration_ms=duration_ms,
            message=_apply_message(report),
            detail=report,
        )
        _prune(host)
    host.refresh_from_db()
    return host


def _apply_message(report: dict[str, Any]) -> str:
    if not report.get("ok"):
        line = report.get("error_line")
        return f"{report.get('error') or 'apply failed'}" + (f" (line: {line})" if line else "")
    rules = report.get("rules") or {}
    parts = [
        f"{report.get('mode', 'apply')} apply of revision {report.get('revision')}",
        f"{rules.get('4', 0)} IPv4 + {rules.get('6', 0)} IPv6 rules, {report.get('sets', 0)} sets",
        f"{report.get('changed_chains', 0)} chains replaced",
    ]
    if report.get("conntrack_deleted"):
        parts.append(f"{report['conntrack_deleted']} conntrack entries cut")
    return "; ".join(parts)


def record_drift(report: dict[str, Any]) -> None:
    host = Host.objects.filter(name=report.get("host")).first()
    if host is None:
        return
    found = report.get("found") or {}
    summary = ", ".join(f"{key}: {len(value)}" for key, value in sorted(found.items()) if value)
    repaired = bool(report.get("repaired"))
    HostEvent.objects.create(
        host=host,
        kind=HostEventKind.DRIFT,
        revision=int(report.get("revision") or 0),
        duration_ms=int(report.get("duration_ms") or 0),
        message=f"kernel differed from revision {report.get('revision')} ({summary}); "
        + ("repaired" if repaired else f"repair failed: {report.get('error')}"),
        detail=report,
    )
    _prune(host)
    dispatch.send_event(dispatch.EventKind.HOST_DRIFT, _host_payload(host, report), scope="global")


def record_republish(host_name: str, reason: str) -> None:
    host = Host.objects.filter(name=host_name).first()
    if host is not None:
        HostEvent.objects.create(
            host=host, kind=HostEventKind.REPUBLISH, revision=host.desired_revision, message=reason
        )


def _host_payload(host: Host, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": host.name,
        "status": host.status,
        "desired_revision": host.desired_revision,
        "applied_revision": host.applied_revision,
        "last_apply_at": host.last_apply_at.isoformat() if host.last_apply_at else None,
        "last_apply_duration_ms": host.last_apply_duration_ms,
        "last_error": host.last_error,
        "report": {k: v for k, v in report.items() if k != "detail"},
    }
