"""Helpers shared by the Neutron-shaped dictionaries of every app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sgweb.tenancy.models import Project


def neutron_time(value: datetime | None) -> str | None:
    """Neutron prints timestamps in UTC to the second: 2016-10-04T12:14:57Z."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def standard_fields(obj: Any) -> dict[str, Any]:
    project_id = str(obj.project_id).replace("-", "") if obj.project_id else ""
    return {
        "tenant_id": project_id,
        "project_id": project_id,
        "tags": [],
        "created_at": neutron_time(obj.created_at),
        "updated_at": neutron_time(obj.updated_at),
        "revision_number": obj.revision_number,
    }


def project_to_dict(project: Project) -> dict[str, Any]:
    return {
        "id": project.id.hex,
        "name": project.name,
        "description": project.description,
        "created_at": neutron_time(project.created_at),
        "updated_at": neutron_time(project.updated_at),
        "revision_number": project.revision_number,
    }
