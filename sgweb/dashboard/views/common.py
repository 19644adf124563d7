"""What every dashboard view shares: answering a form either as a page or as JSON for the
inline validation script, turning the actions' errors into form errors, and the flows built on
that (a create page, a posted form, a button)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse

from sgweb import dispatch
from sgweb.dashboard import delivery
from sgweb.dashboard.guards import deny_unless_changeable, raise_for_access
from sgweb.dashboard.shell import build_shell, render_page
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


def button_change(
    request: HttpRequest,
    change: Callable[[], object],
    *,
    back: str,
    to: str,
    message: str,
    in_use: Callable[[], str] | None = None,
    with_details: bool = False,
) -> HttpResponse:
    """A button that changes something: `change` runs the action; done, on to `to` with
    `message`; refused, back to `back` (the page the button was on) saying why, as
    `button_refused` does, or, for an object in use (409) when `in_use` is given, in its words
    (which policies use a rule)."""
    try:
        change()
    except ActionError as error:
        if in_use is not None and error.status_code == 409:
            return refused_message(request, back, in_use(), error.status_code)
        return button_refused(request, back, error, with_details=with_details)
    return done(request, to, message)


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
    """A delete button: a `button_change` whose refusal says the action's details by default
    (how many ports still use what was to be deleted, say)."""
    return button_change(
        request, delete, back=back, to=to, message=deleted, in_use=in_use, with_details=with_details
    )


@dataclass(frozen=True)
class Done:
    """Where a form that was carried out goes on to, and what the next page says."""

    url: str
    message: str = ""


def submit(
    request: HttpRequest,
    form: forms.BaseForm,
    render_page: Callable[[int], HttpResponse],
    change: Callable[[], Done | None],
    *,
    aliases: dict[str, str] | None = None,
    not_found_page: bool = False,
) -> HttpResponse:
    """A posted form: `change` runs the action on the form's values and says where to go on to;
    it returns None instead when it has put errors on the form (a value the page did not
    offer). Invalid, refused by the action (see `form_refused`) or None, the form is sent back
    with its errors."""
    if not form.is_valid():
        return refused(request, form, render_page)
    try:
        outcome = change()
    except ActionError as error:
        return form_refused(
            request, form, render_page, error, aliases=aliases, not_found_page=not_found_page
        )
    if outcome is None:
        return refused(request, form, render_page)
    return done(request, outcome.url, outcome.message)


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
    it (see `submit`); done, back to `url` with the message `saved`."""

    def save() -> Done:
        change()
        return Done(url, saved)

    return submit(request, form, render_page, save, not_found_page=not_found_page)


def create_page(
    request: HttpRequest,
    form: forms.BaseForm,
    create: Callable[[Project], Done | None],
    template: str,
    *,
    section: str,
    context: Callable[[], dict[str, Any]] = dict,
    not_found_page: bool = False,
) -> HttpResponse:
    """A create page: the blank form on GET; posted, `create` makes the object in the project
    the form chose (one of `create_projects`') as `submit` says. `context` adds what the
    template needs besides the form and the projects; it is called when the page renders, so
    a sent-back form shows what was picked."""
    shell = build_shell(request)
    projects, initial_project = create_projects(request, shell)

    def page(status: int = 200) -> HttpResponse:
        return render_page(
            request,
            template,
            {"form": form, "projects": projects, "initial_project": initial_project, **context()},
            section=section,
            shell=shell,
            status=status,
        )

    if request.method != "POST":
        return page()

    def create_in_chosen_project() -> Done | None:
        project = chosen_project(form, projects)
        return None if project is None else create(project)

    return submit(request, form, page, create_in_chosen_project, not_found_page=not_found_page)


def refused_message(
    request: HttpRequest, url: str, message: str, status: int = 400
) -> HttpResponse:
    """A refusal of a form-less action (a button): said in a message on the page it came from."""
    if wants_json(request):
        return JsonResponse({"errors": {"__all__": [message]}}, status=status)
    messages.error(request, message)
    return HttpResponseRedirect(url)
