"""The one family of exceptions the action functions raise.

The API maps them to Neutron errors (`{"NeutronError": {"type", "message", "detail"}}` with the
status code below); the dashboard shows `message` (and `errors` per form field).
"""

from __future__ import annotations


class ActionError(Exception):
    status_code = 400
    neutron_type = "HTTPBadRequest"

    def __init__(
        self,
        message: str,
        *,
        neutron_type: str | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if neutron_type:
            self.neutron_type = neutron_type
        # Field name -> messages, so forms can show each next to its input.
        self.errors = errors or {}


class Invalid(ActionError):
    status_code = 400
    neutron_type = "InvalidInput"

    @classmethod
    def from_errors(cls, errors: dict[str, list[str]]) -> Invalid:
        message = "; ".join(
            f"{msg}" if field == "__all__" else f"{field}: {msg}"
            for field, messages in errors.items()
            for msg in messages
        )
        return cls(f"Invalid input for operation: {message}", errors=errors)


class PermissionDenied(ActionError):
    status_code = 403
    neutron_type = "HTTPForbidden"


class NotFound(ActionError):
    status_code = 404
    neutron_type = "HTTPNotFound"


class Conflict(ActionError):
    status_code = 409
    neutron_type = "Conflict"


class OverQuota(Conflict):
    neutron_type = "OverQuota"


class PreconditionFailed(ActionError):
    status_code = 412
    neutron_type = "PreconditionFailed"


class MethodNotAllowed(ActionError):
    status_code = 405
    neutron_type = "HTTPMethodNotAllowed"
