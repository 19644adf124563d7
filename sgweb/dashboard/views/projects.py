"""Projects: their members and quotas. Admins manage both; others read what they may see."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from sgweb.dashboard.forms import MemberForm, ProjectForm, QuotaForm
from sgweb.dashboard.guards import deny_unless_admin
from sgweb.dashboard.listing import paginate, search_term
from sgweb.dashboard.shell import render_page
from sgweb.dashboard.views.common import Done, button_change, refused_message, submit
from sgweb.networks.models import Port
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy import actions
from sgweb.tenancy.access import is_admin, visible_projects
from sgweb.tenancy.models import Membership, Project, Quota


def _count(model: Any) -> Coalesce:
    return Coalesce(
        Subquery(
            model.objects.filter(project=OuterRef("pk"))
            .order_by()
            .values("project")
            .annotate(n=Count("pk"))
            .values("n"),
            output_field=IntegerField(),
        ),
        0,
    )


def _with_usage(projects: QuerySet[Project]) -> QuerySet[Project]:
    return projects.annotate(
        group_count=_count(SecurityGroup),
        rule_count=_count(SecurityGroupRule),
        port_count=_count(Port),
        member_count=_count(Membership),
    ).select_related("quota")


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(request.user)
    query = search_term(request)
    if query:
        projects = projects.filter(name__icontains=query)
    listing = paginate(request, _with_usage(projects))
    return render_page(
        request,
        "dashboard/projects/list.html",
        {"listing": listing, "is_admin": is_admin(request.user)},
        section="projects",
    )


@login_required
def project_new(request: HttpRequest) -> HttpResponse:
    deny_unless_admin(request.user)
    form = ProjectForm(request.POST or None)

    def page(status: int = 200) -> HttpResponse:
        return render_page(
            request,
            "dashboard/projects/new.html",
            {"form": form},
            section="projects",
            status=status,
        )

    if request.method != "POST":
        return page()

    def create() -> Done:
        project = actions.create_project(
            request.user,
            name=form.cleaned_data.get("name", ""),
            description=form.cleaned_data.get("description", ""),
        )
        return Done(
            reverse("dashboard:project", args=[project.pk]),
            f"Project {project.name} created with its default security group. Add members next.",
        )

    return submit(request, form, page, create)


def _project_for(request: HttpRequest, project_id: str) -> Project:
    try:
        return _with_usage(visible_projects(request.user)).get(pk=project_id)
    except (Project.DoesNotExist, ValueError, ValidationError) as error:
        raise Http404("No such project") from error


def _detail_page(
    request: HttpRequest,
    project: Project,
    quota_form: QuotaForm | None = None,
    member_form: MemberForm | None = None,
    status: int = 200,
) -> HttpResponse:
    quota = getattr(project, "quota", None) or Quota(project=project)
    members = list(
        Membership.objects.filter(project=project)
        .select_related("user", "user__profile")
        .order_by("user__username")
    )
    return render_page(
        request,
        "dashboard/projects/detail.html",
        {
            "project": project,
            "quota": quota,
            "members": members,
            "is_admin": is_admin(request.user),
            "quota_form": quota_form
            or QuotaForm(
                initial={
                    "security_groups": quota.security_groups,
                    "security_group_rules": quota.security_group_rules,
                }
            ),
            "member_form": member_form or MemberForm(),
        },
        section="projects",
        status=status,
    )


@login_required
def project_detail(request: HttpRequest, project_id: str) -> HttpResponse:
    return _detail_page(request, _project_for(request, project_id))


@login_required
@require_POST
def quota_update(request: HttpRequest, project_id: str) -> HttpResponse:
    project = _project_for(request, project_id)
    deny_unless_admin(request.user)
    form = QuotaForm(request.POST)

    def save() -> Done:
        values = {
            key: (form.cleaned_data.get(key) or "").strip() or None
            for key in ("security_groups", "security_group_rules")
        }
        actions.set_quota(request.user, project, **values)
        return Done(reverse("dashboard:project", args=[project.pk]), "Quota saved.")

    return submit(
        request,
        form,
        lambda status: _detail_page(request, project, quota_form=form, status=status),
        save,
    )


@login_required
@require_POST
def member_add(request: HttpRequest, project_id: str) -> HttpResponse:
    project = _project_for(request, project_id)
    deny_unless_admin(request.user)
    form = MemberForm(request.POST)

    def add() -> Done | None:
        username = (form.cleaned_data.get("username") or "").strip()
        user = get_user_model().objects.filter(username=username).first() if username else None
        if user is None:
            form.add_error(
                "username", f"No user is called “{username}”." if username else "Give a username."
            )
            return None
        actions.add_member(request.user, project, user)
        return Done(reverse("dashboard:project", args=[project.pk]), f"{username} is now a member.")

    return submit(
        request,
        form,
        lambda status: _detail_page(request, project, member_form=form, status=status),
        add,
        not_found_page=True,
    )


@login_required
@require_POST
def member_remove(request: HttpRequest, project_id: str, user_id: int) -> HttpResponse:
    project = _project_for(request, project_id)
    deny_unless_admin(request.user)
    url = reverse("dashboard:project", args=[project.pk])
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return refused_message(request, url, "No such user.", 404)
    return button_change(
        request,
        lambda: actions.remove_member(request.user, project, user),
        back=url,
        to=url,
        message=f"{user.get_username()} removed from {project.name}.",
    )
