"""Who sees and changes what from the dashboard: outsiders get 404, readers read and get 403."""

from __future__ import annotations

import pytest
from django.test import Client

from sgweb.audit.models import AuditEntry
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from sgweb.tenancy.models import ApiToken, Quota
from tests.dashboard.conftest import World, client_for

pytestmark = pytest.mark.django_db


def _a_pages(world: World) -> list[str]:
    rule = world.web.rules.first()
    assert rule is not None
    return [
        f"/security-groups/{world.web.pk}",
        f"/ports/{world.port_a.pk}",
        f"/networks/{world.network_a.pk}",
        f"/projects/{world.people.project_a.pk}",
        f"/audit/{AuditEntry.objects.filter(project=world.people.project_a).first().pk}",
    ]


def _a_writes(world: World) -> list[tuple[str, dict[str, str]]]:
    rule = world.web.rules.first()
    assert rule is not None
    return [
        (f"/security-groups/{world.web.pk}/rules", {"direction": "ingress", "protocol": "tcp"}),
        (f"/security-groups/{world.web.pk}/rules/{rule.pk}/delete", {}),
        (f"/security-groups/{world.web.pk}/edit", {"name": "pwned"}),
        (f"/security-groups/{world.web.pk}/delete", {}),
        (f"/ports/{world.port_a.pk}/groups", {"security_group": str(world.web.pk)}),
        (f"/ports/{world.port_a.pk}/groups/{world.web.pk}/remove", {}),
        (f"/ports/{world.port_a.pk}/port-security", {"enabled": "false"}),
        (f"/ports/{world.port_a.pk}/address-pairs", {"ip_address": "198.51.100.1"}),
        (f"/networks/{world.network_a.pk}/subnets", {"cidr": "192.0.2.0/25"}),
    ]


def _state(world: World) -> tuple[object, ...]:
    world.web.refresh_from_db()
    return (
        world.web.name,
        SecurityGroupRule.objects.count(),
        SecurityGroup.objects.count(),
        tuple(world.port_a.security_groups.values_list("pk", flat=True)),
        world.port_a.allowed_address_pairs.count(),
        world.network_a.subnets.count(),
    )


def test_outsider_gets_404_for_another_projects_pages(world: World, as_charlie: Client) -> None:
    for path in _a_pages(world):
        assert as_charlie.get(path).status_code == 404, path


def test_outsider_gets_404_for_every_write_and_nothing_changes(
    world: World, as_charlie: Client
) -> None:
    before = _state(world)
    for path, data in _a_writes(world):
        assert as_charlie.post(path, data).status_code == 404, path
    assert _state(world) == before


def test_malformed_ids_are_just_404(as_alice: Client) -> None:
    for path in ("/security-groups/nope", "/ports/123", "/networks/x", "/projects/y", "/audit/z"):
        assert as_alice.get(path).status_code == 404, path


def test_outsider_lists_do_not_show_another_projects_objects(
    world: World, as_charlie: Client
) -> None:
    groups = as_charlie.get("/security-groups").content.decode()
    assert str(world.web.pk) not in groups and str(world.group_b.pk) in groups
    ports = as_charlie.get("/ports").content.decode()
    assert str(world.port_a.pk) not in ports and str(world.port_b.pk) in ports
    audit = as_charlie.get("/audit").content.decode()
    assert "web-net" not in audit
    overview = as_charlie.get("/").content.decode()
    assert "web-net" not in overview
    as_project = as_charlie.get("/security-groups", {"project": str(world.people.project_a.pk)})
    assert str(world.web.pk) not in as_project.content.decode()


def test_reader_sees_everything_without_write_controls(world: World, as_rita: Client) -> None:
    for path in _a_pages(world):
        assert as_rita.get(path).status_code == 200, path
    group = as_rita.get(f"/security-groups/{world.web.pk}").content.decode()
    assert "data-rule-form" not in group
    assert "/rules/" not in group  # no delete buttons
    assert "Read-only" in group
    port = as_rita.get(f"/ports/{world.port_a.pk}").content.decode()
    assert "/groups" not in port and "/port-security" not in port
    assert "New group" not in as_rita.get("/security-groups").content.decode()


def test_reader_gets_403_for_every_write_and_nothing_changes(world: World, as_rita: Client) -> None:
    before = _state(world)
    for path, data in _a_writes(world):
        assert as_rita.post(path, data).status_code == 403, path
    assert as_rita.get("/security-groups/new").status_code == 403
    assert _state(world) == before


def test_teammate_can_change_the_shared_project(world: World) -> None:
    bob = client_for(world.people.bob)
    response = bob.post(f"/security-groups/{world.web.pk}/edit", {"name": "web2"})
    assert response.status_code == 302


def test_only_admins_change_quotas_and_members(world: World, as_alice: Client) -> None:
    project = world.people.project_a
    page = as_alice.get(f"/projects/{project.pk}").content.decode()
    assert "/quota" not in page
    assert (
        as_alice.post(f"/projects/{project.pk}/quota", {"security_groups": "99"}).status_code == 403
    )
    assert Quota.objects.get(project=project).security_groups != 99
    assert (
        as_alice.post(f"/projects/{project.pk}/members", {"username": "charlie"}).status_code == 403
    )


def test_admin_adjusts_quotas_and_members(world: World, as_adam: Client) -> None:
    project = world.people.project_a
    as_adam.post(
        f"/projects/{project.pk}/quota", {"security_groups": "25", "security_group_rules": "-1"}
    )
    quota = Quota.objects.get(project=project)
    assert (quota.security_groups, quota.security_group_rules) == (25, -1)
    answer = as_adam.post(
        f"/projects/{project.pk}/quota", {"security_groups": "-5"}, HTTP_X_REQUESTED_WITH="fetch"
    )
    assert answer.status_code == 400
    assert answer.json()["errors"]["security_groups"]

    as_adam.post(f"/projects/{project.pk}/members", {"username": "charlie"})
    assert project.memberships.filter(user=world.people.charlie).exists()
    as_adam.post(f"/projects/{project.pk}/members/{world.people.charlie.pk}/remove")
    assert not project.memberships.filter(user=world.people.charlie).exists()
    answer = as_adam.post(
        f"/projects/{project.pk}/members", {"username": "nobody"}, HTTP_X_REQUESTED_WITH="fetch"
    )
    assert "No user is called" in answer.json()["errors"]["username"][0]


def test_tokens_are_shown_once_listed_by_prefix_and_revoked(world: World, as_alice: Client) -> None:
    page = as_alice.post("/tokens", {"name": "ci", "expires_in_days": "30"})
    assert page.status_code == 201
    token = ApiToken.objects.get(user=world.people.alice, name="ci")
    text = page.content.decode()
    assert "data-token-key" in text and token.prefix in text
    again = as_alice.get("/tokens").content.decode()
    assert "data-token-key" not in again and f"{token.prefix}…" in again

    as_alice.post(f"/tokens/{token.pk}/revoke")
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_a_token_needs_a_name(as_alice: Client) -> None:
    page = as_alice.post("/tokens", {"name": ""})
    assert page.status_code == 400
    assert "Give the token a name" in page.content.decode()


def test_nobody_revokes_someone_elses_token(world: World, as_charlie: Client) -> None:
    from sgweb.tenancy.actions import create_api_token

    token, _key = create_api_token(world.people.alice, name="mine")
    assert as_charlie.post(f"/tokens/{token.pk}/revoke").status_code == 404
    assert ApiToken.objects.filter(pk=token.pk).exists()
    assert "mine" not in as_charlie.get("/tokens").content.decode()


def test_audit_log_filters_and_shows_before_and_after(world: World, as_alice: Client) -> None:
    as_alice.post(f"/security-groups/{world.web.pk}/edit", {"name": "www", "description": "d"})
    entries = as_alice.get("/audit", {"type": "security_group", "action": "update"})
    text = entries.content.decode()
    assert "www" in text
    entry = AuditEntry.objects.get(object_type="security_group", action="update")
    diff = as_alice.get(f"/audit/{entry.pk}").content.decode()
    assert 'class="changed"' in diff
    assert "web" in diff and "www" in diff
    assert as_alice.get("/audit", {"actor": "nobody"}).content.decode().count("Diff</a>") == 0


def test_refusals_use_the_products_own_error_pages(
    world: World, as_charlie: Client, as_rita: Client, settings
) -> None:
    settings.DEBUG = False
    missing = as_charlie.get(f"/security-groups/{world.web.pk}")
    assert missing.status_code == 404
    assert "belongs to a project you are not a member of" in missing.content.decode()
    refused = as_rita.post(f"/security-groups/{world.web.pk}/edit", {"name": "x"})
    assert refused.status_code == 403
    assert "You may look but not change this" in refused.content.decode()


def test_admin_creates_users_and_changes_roles(world: World, as_adam: Client) -> None:
    from django.contrib.auth.models import User

    as_adam.post(
        "/users", {"username": "dora", "password": "a long enough password", "role": "reader"}
    )
    dora = User.objects.get(username="dora")
    assert dora.profile.role == "reader" and dora.check_password("a long enough password")
    as_adam.post(f"/users/{dora.pk}/role", {"role": "member"})
    dora.profile.refresh_from_db()
    assert dora.profile.role == "member"
    short = as_adam.post(
        "/users",
        {"username": "eve", "password": "short", "role": "member"},
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert short.status_code == 400 and short.json()["errors"]["password"]
    assert not User.objects.filter(username="eve").exists()


def test_users_page_is_for_admins_and_readers_only(
    world: World, as_alice: Client, as_rita: Client
) -> None:
    assert as_alice.get("/users").status_code == 403
    page = as_rita.get("/users")
    assert page.status_code == 200
    assert "New user" not in page.content.decode()
    assert (
        as_rita.post("/users", {"username": "x", "password": "a long password"}).status_code == 403
    )
    assert (
        as_rita.post(f"/users/{world.people.alice.pk}/role", {"role": "admin"}).status_code == 403
    )
