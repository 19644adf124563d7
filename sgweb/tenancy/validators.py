"""Text checks shared by every app: names and descriptions.

Validators collect messages per field in an `Errors` and raise `Invalid` once, so a form can show
every problem at the same time.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from sgweb.tenancy.errors import Invalid

MAX_NAME_LENGTH = 255
MAX_DESCRIPTION_LENGTH = 255


class Errors:
    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = defaultdict(list)
        # (type, message) of the first problem Neutron has its own exception for.
        self.typed: tuple[str, str] | None = None

    def add(self, field: str, message: str, *, neutron_type: str | None = None) -> None:
        """`neutron_type`: Neutron's exception name for this problem (e.g.
        SecurityGroupInvalidPortRange); a lone such problem is answered with it and its words."""
        self.by_field[field].append(message)
        if neutron_type and self.typed is None:
            self.typed = (neutron_type, message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def raise_if_any(self) -> None:
        if not self.by_field:
            return
        errors = dict(self.by_field)
        if self.typed is not None:
            neutron_type, message = self.typed
            if sum(len(messages) for messages in errors.values()) > 1:
                message = Invalid.from_errors(errors).message
            raise Invalid(message, neutron_type=neutron_type, errors=errors)
        raise Invalid.from_errors(errors)


def _has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Cf") for char in value)


def clean_text(
    errors: Errors, field: str, value: object, *, max_length: int, label: str | None = None
) -> str:
    label = label or field.replace("_", " ").capitalize()
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.add(field, f"{label} must be a string.")
        return ""
    if len(value) > max_length:
        errors.add(field, f"{label} must be at most {max_length} characters (got {len(value)}).")
    if _has_control_characters(value):
        errors.add(field, f"{label} must not contain control characters.")
    return value


def clean_name(errors: Errors, value: object, field: str = "name") -> str:
    return clean_text(errors, field, value, max_length=MAX_NAME_LENGTH).strip()


def clean_description(errors: Errors, value: object, field: str = "description") -> str:
    return clean_text(errors, field, value, max_length=MAX_DESCRIPTION_LENGTH)


def clean_name_and_description(errors: Errors, changes: dict[str, object]) -> dict[str, str]:
    """The cleaned name and description of an update, for those of the two it changes."""
    values: dict[str, str] = {}
    if "name" in changes:
        values["name"] = clean_name(errors, changes["name"])
    if "description" in changes:
        values["description"] = clean_description(errors, changes["description"])
    return values


CANNOT_CHANGE = "This field cannot be changed."
UNRECOGNIZED = "Unrecognized attribute."


def refuse_fields(given: Iterable[str], allowed: Iterable[str], message: str) -> None:
    """Refuse the request (400) when it names a field outside `allowed`: each such field gets
    `message` (`CANNOT_CHANGE` for an update, `UNRECOGNIZED` for a create)."""
    unknown = set(given) - set(allowed)
    if unknown:
        raise Invalid.from_errors({field: [message] for field in unknown})


def clean_bool(errors: Errors, field: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    errors.add(field, f"'{value}' is not a valid boolean value.")
    return False


def clean_flags(
    errors: Errors, changes: dict[str, object], flags: Iterable[str]
) -> dict[str, bool]:
    """The cleaned booleans of an update, for those of `flags` it changes."""
    return {flag: clean_bool(errors, flag, changes[flag]) for flag in flags if flag in changes}
