"""The audit log: every change, who made it, and the object before and after."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date

from sgweb.audit.choices import AuditAction
from sgweb.audit.models import AuditEntry
from sgweb.dashboard.listing import paginate, search_term
from sgweb.dashboard.shell import build_shell, render_page
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.access import sees_all_projects


def readable_entries(user: Any) -> QuerySet[AuditEntry]:
    """Admins and readers read everything; members their projects' entries and their own."""
    entries = AuditEntry.objects.select_related("actor", "project")
    if sees_all_projects(user):
        return entries
    return entries.filter(
        Q(project_id__in=tenancy_access.member_project_ids(user))
        | Q(project__isnull=True, actor=user)
    )


def _day_start(value: str) -> datetime | None:
    day = parse_date(value) if value else None
    return timezone.make_aware(datetime.combine(day, time.min)) if day else None


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    shell = build_shell(request)
    entries = readable_entries(request.user)
    params = request.GET
    project_id = params.get("project") or (
        str(shell.current_project.pk) if shell.current_project else ""
    )
    if project_id:
        entries = entries.filter(project_id=project_id) if _is_uuid(project_id) else entries.none()
    actor = params.get("actor", "").strip()
    if actor:
        entries = entries.filter(actor__username=actor)
    object_type = params.get("type", "")
    if object_type:
        entries = entries.filter(object_type=object_type)
    action = params.get("action", "")
    if action in AuditAction.values:
        entries = entries.filter(action=action)
    since = _day_start(params.get("since", ""))
    if since:
        entries = entries.filter(at__gte=since)
    until = _day_start(params.get("until", ""))
    if until:
        entries = entries.filter(at__lt=until + timedelta(days=1))
    query = search_term(request)
    if query:
        entries = entries.filter(Q(object_repr__icontains=query) | Q(object_id__istartswith=query))
    listing = paginate(request, entries.order_by("-at", "-pk"))
    actors = (
        get_user_model()
        .objects.filter(audit_entries__isnull=False)
        .distinct()
        .order_by("username")
        .values_list("username", flat=True)
    )
    if not sees_all_projects(request.user):
        actors = actors.filter(audit_entries__in=readable_entries(request.user))
    object_types = (
        AuditEntry.objects.order_by("object_type").values_list("object_type", flat=True).distinct()
    )
    return render_page(
        request,
        "dashboard/audit/list.html",
        {
            "listing": listing,
            "projects": shell.projects,  # the projects the user may see, by name
            "project_id": project_id,
            "actors": list(actors[:200]),
            "actor": actor,
            "object_types": list(object_types),
            "object_type": object_type,
            "actions": AuditAction.choices,
            "action": action,
            "since": params.get("since", ""),
            "until": params.get("until", ""),
        },
        section="audit",
        shell=shell,
    )


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else {"value": value}


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class DiffLine:
    key: str
    before: str
    after: str
    kind: str  # same | changed | added | removed


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def diff_lines(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[DiffLine]:
    before = before or {}
    after = after or {}
    lines = []
    for key in sorted(set(before) | set(after)):
        if key not in before:
            kind = "added"
        elif key not in after:
            kind = "removed"
        elif before[key] != after[key]:
            kind = "changed"
        else:
            kind = "same"
        lines.append(
            DiffLine(
                key,
                _show(before.get(key)) if key in before else "",
                _show(after.get(key)) if key in after else "",
                kind,
            )
        )
    # Changes first: that is what the reader came for.
    order = {"changed": 0, "added": 1, "removed": 2, "same": 3}
    return sorted(lines, key=lambda line: order[line.kind])


_OBJECT_PAGES = {
    "security_group": ("dashboard:security_group", "security group"),
    "port": ("dashboard:port", "port"),
    "network": ("dashboard:network", "network"),
    "project": ("dashboard:project", "project"),
}


def object_link(entry: AuditEntry) -> tuple[str, str]:
    """Where the changed object lives now (its page answers 404 if it has gone since)."""
    if entry.action == AuditAction.DELETE:
        return "", ""
    if entry.object_type in _OBJECT_PAGES:
        name, label = _OBJECT_PAGES[entry.object_type]
        return reverse(name, args=[entry.object_id]), label
    after = entry.after if isinstance(entry.after, dict) else {}
    if entry.object_type == "security_group_rule" and after.get("security_group_id"):
        return reverse("dashboard:security_group", args=[after["security_group_id"]]), "group"
    if entry.object_type == "subnet" and after.get("network_id"):
        return reverse("dashboard:network", args=[after["network_id"]]), "network"
    return "", ""


@login_required
def audit_detail(request: HttpRequest, entry_id: str) -> HttpResponse:
    if not _is_uuid(entry_id):
        raise Http404("No such entry")
    entry = readable_entries(request.user).filter(pk=entry_id).first()
    if entry is None:
        raise Http404("No such entry")
    lines = diff_lines(_as_dict(entry.before), _as_dict(entry.after))
    history = list(
        readable_entries(request.user)
        .filter(object_type=entry.object_type, object_id=entry.object_id)
        .order_by("-at")[:20]
    )
    object_url, object_label = object_link(entry)
    return render_page(
        request,
        "dashboard/audit/detail.html",
        {
            "entry": entry,
            "object_url": object_url,
            "object_label": object_label,
            "lines": lines,
            "changed": sum(1 for line in lines if line.kind != "same"),
            "history": history,
        },
        section="audit",
    )
