"""API tokens: each user's keys for `X-Auth-Token`. A key is shown once, when it is created."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from sgweb.dashboard.forms import TokenForm
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import (
    button_refused,
    done,
    form_refused,
    refused,
)
from sgweb.tenancy import actions
from sgweb.tenancy.access import is_admin
from sgweb.tenancy.errors import ActionError
from sgweb.tenancy.models import ApiToken

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EXPIRY_CHOICES = (
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
)


def _token_page(
    request: HttpRequest, form: TokenForm, new_key: str = "", status: int = 200
) -> HttpResponse:
    everyone = is_admin(request.user) and request.GET.get("all") == "1"
    tokens = ApiToken.objects.select_related("user").order_by("-created_at")
    if not everyone:
        tokens = tokens.filter(user=cast("User", request.user))  # the views are login_required
    return render_page(
        request,
        "dashboard/tokens/list.html",
        {
            "tokens": list(tokens[:500]),
            "form": form,
            "new_key": new_key,
            "everyone": everyone,
            "expiry_choices": EXPIRY_CHOICES,
            "now": timezone.now(),
            "endpoint": request.build_absolute_uri("/networking"),
        },
        section="tokens",
        status=status,
    )


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _token_page(request, TokenForm())
    form = TokenForm(request.POST)
    form.is_valid()
    days = form.cleaned_data.get("expires_in_days", "")
    expires_at = None
    if days:
        if not days.isdigit() or not 1 <= int(days) <= 3650:
            form.add_error("expires_in_days", "Choose an expiry from the list.")
            return refused(request, form, lambda status: _token_page(request, form, status=status))
        expires_at = timezone.now() + timedelta(days=int(days))
    try:
        _token, key = actions.create_api_token(
            request.user, name=form.cleaned_data.get("name", ""), expires_at=expires_at
        )
    except ActionError as error:
        return form_refused(
            request,
            form,
            lambda status: _token_page(request, form, status=status),
            error,
            aliases={"expires_at": "expires_in_days"},
        )
    # The key exists in clear only in this response: it is never stored and never shown again.
    response = _token_page(request, TokenForm(), new_key=key, status=201)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: str) -> HttpResponse:
    try:
        token = ApiToken.objects.select_related("user").get(pk=token_id)
    except (ApiToken.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such token") from error
    url = reverse("dashboard:tokens")
    try:
        actions.revoke_api_token(request.user, token)
    except ActionError as error:
        return button_refused(request, url, error)
    return done(
        request,
        url,
        f"Token {token.name} ({token.prefix}…) revoked. Clients using it are refused from now on.",
    )
