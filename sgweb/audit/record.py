"""Writing audit entries; called inside the action's transaction so both commit or neither.

Every entry is also the live `change` event browsers see (the overview's recent changes, the
group page of the group it touches), sent once the transaction commits.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any, cast

from django.core.serializers.json import DjangoJSONEncoder

from sgweb import dispatch
from sgweb.audit.choices import AuditAction
from sgweb.audit.models import AuditEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # Round-trip so UUIDs, datetimes and tuples are stored the way they will be read back.
    return cast(dict[str, Any], json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def record(
    actor: User | AnonymousUser | None,
    action: AuditAction | str,
    object_type: str,
    object_id: uuid.UUID | str | int,
    object_repr: str,
    *,
    project_id: uuid.UUID | str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        project_id=project_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:300],
        before=_jsonable(before),
        after=_jsonable(after),
    )
    scope = dispatch.project_scope(project_id) if project_id else "global"
    dispatch.send_event_on_commit(dispatch.EventKind.CHANGE, change_message(entry), scope=scope)
    return entry


def change_message(entry: AuditEntry) -> dict[str, Any]:
    """The `change` message of the live protocol for one audit entry."""
    state = entry.after or entry.before or {}
    return {
        "type": "change",
        "id": str(entry.pk),
        "at": entry.at.timestamp(),
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "project_id": str(entry.project_id) if entry.project_id else None,
        "actor": entry.actor.get_username() if entry.actor is not None else None,
        # The group a rule belongs to, so the group's page can follow its rules.
        "security_group_id": state.get("security_group_id"),
    }
