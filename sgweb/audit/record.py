"""Writing audit entries; called inside the action's transaction so both commit or neither."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder

from sgweb.audit.choices import AuditAction
from sgweb.audit.models import AuditEntry

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # Round-trip so UUIDs, datetimes and tuples are stored the way they will be read back.
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record(
    actor: AbstractBaseUser | None,
    action: AuditAction | str,
    object_type: str,
    object_id: uuid.UUID | str,
    object_repr: str,
    *,
    project_id: uuid.UUID | str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        project_id=project_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        object_repr=object_repr[:300],
        before=_jsonable(before),
        after=_jsonable(after),
    )
