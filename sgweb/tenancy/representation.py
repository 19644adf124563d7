"""Helpers shared by the Neutron-shaped dictionaries of every app."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sgweb.tenancy.models import Project


def neutron_time(value: datetime | str | None) -> str | None:
    """Neutron prints timestamps in UTC to the second: 2016-10-04T12:14:57Z. A str is
    PostgreSQL's text of a timestamptz, as rows read by the driver have it
    (`sgweb.api.query.driver_cursor`): '2016-10-04 12:14:57.123456+00' in a UTC session."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.endswith("+00") and len(value) >= 22 and value[10] == " ":
            return f"{value[:10]}T{value[11:19]}Z"
        return neutron_time(datetime.fromisoformat(value))
    if value.utcoffset():
        value = value.astimezone(UTC)
    # Formatting by hand: strftime is a measurable share of a 10,000-rule listing.
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
    )


def uuid_text(value: Any) -> str:
    """A UUID's text with dashes, from a uuid.UUID or from the 32 hex digits SQLite keeps
    (rows read without Django's converters, `sgweb.api.query.driver_rows`)."""
    if type(value) is str:
        if len(value) == 32:
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return value
    return str(value)


def uuid_hex(value: Any) -> str:
    """A UUID's 32 hex digits, from a uuid.UUID or from its text (see `uuid_text`)."""
    if type(value) is str:
        return value.replace("-", "")
    return str(value.hex)


def standard_fields(obj: Any) -> dict[str, Any]:
    return standard_fields_of_row(
        {
            "project_id": obj.project_id,
            "created_at": obj.created_at,
            "updated_at": obj.updated_at,
            "revision_number": obj.revision_number,
        }
    )


def standard_fields_of_row(row: dict[str, Any]) -> dict[str, Any]:
    """The same from a `.values()` row (listing thousands of rows without model instances)."""
    project = row["project_id"]
    project_id = uuid_hex(project) if project else ""
    return {
        "tenant_id": project_id,
        "project_id": project_id,
        "tags": [],
        "created_at": neutron_time(row["created_at"]),
        "updated_at": neutron_time(row["updated_at"]),
        "revision_number": row["revision_number"],
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
