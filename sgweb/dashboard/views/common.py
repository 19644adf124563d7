"""What every dashboard view shares: answering a form either as a page or as JSON for the
inline validation script, and turning the actions' errors into form errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse

from sgweb import dispatch
from sgweb.dashboard import delivery
from sgweb.dashboard.guards import deny_unless_changeable, raise_for_access
from sgweb.tenancy import access as tenancy_access
from sgweb.tenancy.errors import ActionError
from sgweb.tenancy.models import Project


class Followed:
    """A change being followed to the hosts; `what` may be reworded once the action has said
    what it made ("web: ingress tcp/22")."""

    def __init__(self, what: str) -> None:
        self.what = what


@contextlib.contextmanager
def following(
    request: HttpRequest, what: str, *, nothing: str = delivery.NOTHING
) -> Iterator[Followed]:
    """Run an action so that the next page says where its change went (hosts or network nodes,
    revisions and how long they took; `nothing`: what a change that reaches none says); a
    refused action leaves nothing to follow."""
    followed = Followed(what)
    with dispatch.tracking_delivery() as sent:
        yield followed
    delivery.remember(request, sent, followed.what, nothing=nothing)


def wants_json(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def form_errors(form: forms.BaseForm) -> dict[str, list[str]]:
    return {field: [str(message) for message in errors] for field, errors in form.errors.items()}


def create_projects(request: HttpRequest, shell: Any) -> tuple[list[Project], str]:
    """A create page's project choice: the projects the user may change (by name; none refuses
    the page, except for an admin) and the id of the one it starts on (the shell's current one)."""
    projects = list(
        tenancy_access.writable_projects(request.user).order_by("name").only("id", "name")
    )
    if not projects:
        deny_unless_changeable(request.user, None)
    # An admin on a fresh install may have no project yet: the page says to create one.
    fallback = projects[0].pk if projects else ""
    initial_project = shell.current_project.pk if shell.current_project else fallback
    return projects, str(initial_project)


def chosen_project(form: forms.BaseForm, projects: list[Project]) -> Project | None:
    """The one of `create_projects`' projects the posted form names; None, with the error on the
    form's project field, when it names none of them."""
    wanted = form.cleaned_data.get("project")
    project = next((p for p in projects if str(p.pk) == wanted), None)
    if project is None:
        form.add_error("project", "Choose a project you may change.")
    return project


def add_action_error(
    form: forms.BaseForm, error: ActionError, aliases: dict[str, str] | None = None
) -> None:
    """Show an action's refusal next to the fields it names, the rest above the form.

    `aliases` maps the action's field names to the form's where they differ.
    """
    placed = False
    for field, messages_ in (error.errors or {}).items():
        field = (aliases or {}).get(field, field)
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, error.message)


def refused(
    request: HttpRequest,
    form: forms.BaseForm,
    render_page: Callable[[int], HttpResponse],
    status: int = 400,
) -> HttpResponse:
    """The form is sent back with its errors; nothing was changed."""
    if wants_json(request):
        return JsonResponse({"errors": form_errors(form)}, status=status)
    return render_page(status)


def done(request: HttpRequest, url: str, message: str = "") -> HttpResponse:
    if message:
        messages.success(request, message)
    if wants_json(request):
        return JsonResponse({"redirect": url})
    return HttpResponseRedirect(url)


def form_refused(
    request: HttpRequest,
    form: forms.BaseForm,
    render_page: Any,
    error: ActionError,
    *,
    aliases: dict[str, str] | None = None,
    not_found_page: bool = False,
) -> HttpResponse:
    """An action refused what the form asked: a 403 (and, with `not_found_page`, a 404) answers
    as Django's refusal; anything else sends the form back with the action's errors on it."""
    if error.status_code == 403 or not_found_page:
        raise_for_access(error)
    add_action_error(form, error, aliases)
    return refused(request, form, render_page, status=error.status_code)


def button_refused(
    request: HttpRequest, url: str, error: ActionError, *, with_details: bool = False
) -> HttpResponse:
    """An action refused a button: a 403/404 answers as Django's refusal, anything else is said
    in a message on the page it came from (`with_details`: followed by the action's per-field
    messages, say how many ports still use what was to be deleted)."""
    raise_for_access(error)
    message = error.message
    if with_details:
        detail = "; ".join(m for ms in error.errors.values() for m in ms)
        message = f"{message} {detail}".strip()
    return refused_message(request, url, message, error.status_code)


def delete_or_refuse(
    request: HttpRequest,
    delete: Callable[[], object],
    *,
    back: str,
    to: str,
    deleted: str,
    in_use: Callable[[], str] | None = None,
    with_details: bool = True,
) -> HttpResponse:
    """A delete button: `delete` runs the action; done, on to `to` with the message `deleted`;
    refused, back to `back` (the page the button was on) saying why, as `button_refused` does
    (with the action's details: how many ports still use it, say), or, for an object in use
    (409) when `in_use` is given, in its words (which policies use a rule)."""
    try:
        delete()
    except ActionError as error:
        if in_use is not None and error.status_code == 409:
            return refused_message(request, back, in_use(), error.status_code)
        return button_refused(request, back, error, with_details=with_details)
    return done(request, to, deleted)


def save_edit(
    request: HttpRequest,
    form: forms.BaseForm,
    render_page: Callable[[int], HttpResponse],
    change: Callable[[], object],
    url: str,
    saved: str,
    *,
    not_found_page: bool = False,
) -> HttpResponse:
    """An object's edit form, posted from the object's page: `change` runs the action on the
    form's values; refused, the page shows again with the form open and the action's errors on
    it (see `form_refused`); done, back to `url` with the message `saved`."""
    if not form.is_valid():
        return refused(request, form, render_page)
    try:
        change()
    except ActionError as error:
        return form_refused(request, form, render_page, error, not_found_page=not_found_page)
    return done(request, url, saved)


def refused_message(
    request: HttpRequest, url: str, message: str, status: int = 400
) -> HttpResponse:
    """A refusal of a form-less action (a button): said in a message on the page it came from."""
    if wants_json(request):
        return JsonResponse({"errors": {"__all__": [message]}}, status=status)
    messages.error(request, message)
    return HttpResponseRedirect(url)
