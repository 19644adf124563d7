"""People: who exists, their role, their projects. Admins create users and change roles;
readers look; members have their own profile in the user menu and nothing here."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard.forms import UserForm
from sgweb.dashboard.guards import deny_unless_admin
from sgweb.dashboard.listing import paginate, search_term
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import (
    button_refused,
    done,
    form_refused,
    refused,
    refused_message,
)
from sgweb.tenancy import actions
from sgweb.tenancy.access import is_admin, sees_all_projects
from sgweb.tenancy.choices import Role
from sgweb.tenancy.errors import ActionError
from sgweb.tenancy.models import Membership


def _require_sees_everyone(request: HttpRequest) -> None:
    if not sees_all_projects(request.user):
        raise PermissionDenied("Only administrators and readers see the list of users.")


def _page(request: HttpRequest, form: UserForm, status: int = 200) -> HttpResponse:
    users = (
        get_user_model()
        .objects.select_related("profile")
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=Membership.objects.select_related("project").order_by("project__name"),
            )
        )
        .annotate(token_count=Count("api_tokens", distinct=True))
        .order_by("username")
    )
    query = search_term(request)
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query))
    return render_page(
        request,
        "dashboard/users/list.html",
        {
            "listing": paginate(request, users),
            "form": form,
            "roles": Role.choices,
            "is_admin": is_admin(request.user),
        },
        section="users",
        status=status,
    )


@login_required
def user_list(request: HttpRequest) -> HttpResponse:
    _require_sees_everyone(request)
    if request.method != "POST":
        return _page(request, UserForm(initial={"role": Role.MEMBER}))
    deny_unless_admin(request.user)
    form = UserForm(request.POST)
    form.is_valid()
    data = form.cleaned_data

    def page(status: int = 200) -> HttpResponse:
        return _page(request, form, status)

    password = data.get("password", "")
    try:
        validate_password(password)
    except ValidationError as error:
        for message in error.messages:
            form.add_error("password", message)
        return refused(request, form, page)
    try:
        user = actions.create_user(
            request.user,
            username=data.get("username", ""),
            password=password,
            email=data.get("email", ""),
            role=data.get("role") or Role.MEMBER,
        )
    except ActionError as error:
        return form_refused(request, form, page, error)
    return done(
        request,
        reverse("dashboard:users"),
        f"User {user.get_username()} created. Add them to projects from the project's page.",
    )


@login_required
@require_POST
def user_role(request: HttpRequest, user_id: int) -> HttpResponse:
    deny_unless_admin(request.user)
    url = reverse("dashboard:users")
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return refused_message(request, url, "No such user.", 404)
    try:
        actions.set_role(request.user, user, request.POST.get("role", ""))
    except ActionError as error:
        return button_refused(request, url, error)
    return done(request, url, f"{user.get_username()} is now {request.POST.get('role')}.")
