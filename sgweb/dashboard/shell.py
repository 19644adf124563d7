"""The page shell every dashboard page shares: navigation section, project switcher, role.

The project switcher narrows lists to one project; it is remembered in the session and never
widens what the user may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sgweb.dashboard import delivery
from sgweb.tenancy.access import is_reader, role_of, sees_all_projects, visible_projects
from sgweb.tenancy.models import Project

SESSION_PROJECT_KEY = "dashboard_project_id"


@dataclass
class Shell:
    role: str
    sees_all: bool
    read_only: bool
    projects: list[Project]
    current_project: Project | None


def current_project(request: HttpRequest, projects: list[Project]) -> Project | None:
    """The project chosen in the switcher, if it is still one of `projects` (those the user
    may see)."""
    wanted = request.session.get(SESSION_PROJECT_KEY)
    if not wanted:
        return None
    return next((p for p in projects if str(p.pk) == wanted), None)


def build_shell(request: HttpRequest) -> Shell:
    user = request.user
    projects = list(visible_projects(user).only("id", "name"))
    chosen = current_project(request, projects)
    if chosen is None and not sees_all_projects(user) and len(projects) == 1:
        chosen = projects[0]
    return Shell(
        role=role_of(user),
        sees_all=sees_all_projects(user),
        read_only=is_reader(user),
        projects=projects,
        current_project=chosen,
    )


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    shell: Shell | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        **context,
        "shell": shell or build_shell(request),
        "nav_section": section,
    }
    if status == 200:
        # The changes this session just made, followed to the hosts (dashboard/delivery.py).
        context["deliveries"] = delivery.take(request)
    return render(request, template, context, status=status)
