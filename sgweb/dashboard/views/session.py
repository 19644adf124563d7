"""Per-session choices: the project the lists are narrowed to; the keyboard help page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from sgweb.dashboard.shell import SESSION_PROJECT_KEY, render_page
from sgweb.tenancy.access import visible_projects


@login_required
@require_POST
def switch_project(request: HttpRequest) -> HttpResponse:
    wanted = request.POST.get("project", "")
    if wanted and _visible(request, wanted):
        request.session[SESSION_PROJECT_KEY] = wanted
    else:
        request.session.pop(SESSION_PROJECT_KEY, None)
    target = request.POST.get("next", "/")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
        target = "/"
    # A project filter in the URL would contradict the new choice; drop the query string.
    return HttpResponseRedirect(target.split("?", 1)[0])


def _visible(request: HttpRequest, project_id: str) -> bool:
    try:
        return visible_projects(request.user).filter(pk=project_id).exists()
    except (ValueError, ValidationError):
        return False


@login_required
def keyboard_help(request: HttpRequest) -> HttpResponse:
    return render_page(request, "dashboard/help.html", {}, section="")
