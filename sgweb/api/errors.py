"""Every API error as Neutron's envelope: `{"NeutronError": {"type", "message", "detail"}}`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from sgweb.tenancy.errors import ActionError

_TYPES_BY_STATUS = {
    400: "HTTPBadRequest",
    401: "HTTPUnauthorized",
    403: "HTTPForbidden",
    404: "HTTPNotFound",
    405: "HTTPMethodNotAllowed",
    406: "HTTPNotAcceptable",
    409: "HTTPConflict",
    415: "HTTPUnsupportedMediaType",
    429: "HTTPTooManyRequests",
    500: "HTTPInternalServerError",
}


def neutron_error_body(
    status_code: int, message: str, neutron_type: str | None = None
) -> dict[str, Any]:
    return {
        "NeutronError": {
            "type": neutron_type or _TYPES_BY_STATUS.get(status_code, "HTTPError"),
            "message": message,
            "detail": "",
        }
    }


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def neutron_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ActionError):
        response: Response | None = Response(
            neutron_error_body(exc.status_code, exc.message, exc.neutron_type),
            status=exc.status_code,
        )
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "The resource could not be found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message = f"Invalid input for operation: {_flatten(exc.detail)}"
        neutron_type = "InvalidInput"
    elif isinstance(exc, exceptions.ParseError):
        message = f"Malformed request body: {_flatten(exc.detail)}"
        neutron_type = "HTTPBadRequest"
    else:
        message = _flatten(exc.detail) if hasattr(exc, "detail") else str(exc)
        neutron_type = None
    response.data = neutron_error_body(response.status_code, message, neutron_type)
    return response


def json_error(status_code: int, message: str, neutron_type: str | None = None) -> JsonResponse:
    """For plain Django views (URL misses under /networking)."""
    return JsonResponse(neutron_error_body(status_code, message, neutron_type), status=status_code)


__all__ = ["json_error", "neutron_error_body", "neutron_exception_handler", "status"]
