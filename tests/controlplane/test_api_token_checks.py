"""Server processes keep what a token check found (sgweb.api.auth.TokenChecks), and still
honour every revocation, deactivation and membership change on the very next request, made in
this process or in another one (which changes the access generation in Redis)."""

from __future__ import annotations

import contextlib
import secrets

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sgweb.api import auth
from sgweb.tenancy import accessgen, actions
from sgweb.tenancy.models import ApiToken
from tests.controlplane.api_helpers import NeutronClient
from tests.controlplane.factories import group


@pytest.fixture(autouse=True)
def own_access_generation(settings):
    """A generation key of this test's own: test processes sharing Redis change theirs."""
    settings.SGWEB_KEY_PREFIX = f"sgwt-tokens-{secrets.token_hex(4)}"
    auth.token_checks.clear()
    yield
    with contextlib.suppress(Exception):  # no Redis: nothing was written
        accessgen._redis().delete(f"{settings.SGWEB_KEY_PREFIX}:access-generation")


def token_queries(api: NeutronClient) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert api.get("/security-groups").status_code == 200
    return sum('FROM "tenancy_apitoken"' in query["sql"] for query in captured.captured_queries)


@pytest.mark.redis
def test_a_second_request_with_a_token_does_not_read_the_token_again(alice):
    api = NeutronClient(alice)
    assert token_queries(api) == 1
    assert token_queries(api) == 0


def test_a_revoked_token_is_refused_on_the_next_request(alice):
    api = NeutronClient(alice)
    assert api.get("/security-groups").status_code == 200
    actions.revoke_api_token(alice, ApiToken.objects.get(user=alice))
    assert api.get("/security-groups").status_code == 401


@pytest.mark.redis
def test_a_token_revoked_by_another_process_is_refused_on_the_next_request(alice):
    api = NeutronClient(alice)
    assert token_queries(api) == 1
    # Another process deletes the row and, once committed, changes the generation; this
    # process hears nothing else of it.
    ApiToken.objects.filter(user=alice)._raw_delete(connection.alias)
    assert api.get("/security-groups").status_code == 200  # cached: nothing told us yet
    accessgen.bump()
    assert api.get("/security-groups").status_code == 401


def test_a_deactivated_user_is_refused_on_the_next_request(alice):
    api = NeutronClient(alice)
    assert api.get("/security-groups").status_code == 200
    alice.is_active = False
    alice.save()
    assert api.get("/security-groups").status_code == 401


def test_a_member_removed_from_a_project_no_longer_sees_its_groups(adam, alice, project_a):
    web = group(alice, project_a, "web")
    api = NeutronClient(alice)
    assert str(web.id) in {g["id"] for g in api.get("/security-groups").json()["security_groups"]}
    actions.remove_member(adam, project_a, alice)
    listed = api.get("/security-groups").json()["security_groups"]
    assert str(web.id) not in {g["id"] for g in listed}


def test_without_redis_every_request_checks_its_token(alice, monkeypatch):
    monkeypatch.setattr(accessgen, "current", lambda: None)
    auth.token_checks.clear()
    api = NeutronClient(alice)
    assert token_queries(api) == 1
    assert token_queries(api) == 1
    assert not auth.token_checks.entries


@pytest.mark.redis
def test_requests_do_not_share_the_cached_user_object(alice):
    api = NeutronClient(alice)
    first = api.get("/security-groups").wsgi_request.user
    second = api.get("/security-groups").wsgi_request.user
    assert first is not second and first.pk == second.pk == alice.pk
