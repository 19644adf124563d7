"""`Idempotency-Key`: a retried API write is answered, not done twice or refused.

A client that lost the answer to a POST, PUT or DELETE (its connection broke, the server was
killed after the commit) sends the same request again with the same header; it gets the answer
the first attempt committed (header `Idempotent-Replayed: true`). The answer is stored in the
same transaction as the change, so there is no window where the change is committed and its
answer is not. A key reused for a different request (method, path or body) is refused (400).
Errors are not stored: the change they refused did not happen, a retry runs again. Keys are per
user and kept for `KEEP`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from sgweb.tenancy.errors import Invalid
from sgweb.tenancy.models import IdempotentRequest

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEEP = dt.timedelta(hours=24)
MAX_KEY_LENGTH = 255

Handler = Callable[..., HttpResponse]


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str) if request.data else ""
    text = f"{request.method} {request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(kept: IdempotentRequest, fingerprint: str) -> HttpResponse:
    if kept.fingerprint != fingerprint:
        raise Invalid(
            f"{HEADER} {kept.key!r} was used for a different request; use a new key.",
            neutron_type="IdempotencyKeyReused",
        )
    if kept.body is None:
        response = HttpResponse(status=kept.status)
    else:
        response = Response(kept.body, status=kept.status)
    response[REPLAYED_HEADER] = "true"
    return response


def _kept(user_id: int, key: str) -> IdempotentRequest | None:
    fresh = IdempotentRequest.objects.filter(
        user_id=user_id, key=key, created_at__gte=timezone.now() - KEEP
    )
    return fresh.order_by().first()


def idempotent(handler: Handler) -> Handler:
    """Wrap a view method (post, put, delete) so `Idempotency-Key` makes it safe to retry."""

    @functools.wraps(handler)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(HEADER, "").strip()
        if not key or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        if len(key) > MAX_KEY_LENGTH:
            raise Invalid(f"{HEADER}: at most {MAX_KEY_LENGTH} characters.")
        fingerprint = _fingerprint(request)
        user_id = int(request.user.pk)
        try:
            with transaction.atomic():
                kept = _kept(user_id, key)
                if kept is not None:
                    return _replay(kept, fingerprint)
                # An expired use of the key, if any, makes way.
                IdempotentRequest.objects.filter(user_id=user_id, key=key).delete()
                response = handler(view, request, *args, **kwargs)
                if response.status_code < 400:
                    IdempotentRequest.objects.create(
                        user_id=user_id,
                        key=key,
                        fingerprint=fingerprint,
                        status=response.status_code,
                        body=getattr(response, "data", None),
                    )
                IdempotentRequest.objects.filter(created_at__lt=timezone.now() - KEEP).delete()
                return response
        except IntegrityError:
            # The same key raced in from another connection and committed first: this attempt
            # was rolled back as a whole; answer with what the first one stored.
            kept = _kept(user_id, key)
            if kept is None:
                raise
            return _replay(kept, fingerprint)

    return wrapper
