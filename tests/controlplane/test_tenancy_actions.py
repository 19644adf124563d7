import pytest

from sgweb.audit.models import AuditEntry
from sgweb.security.models import SecurityGroup
from sgweb.tenancy import actions, models
from sgweb.tenancy.access import visible_projects
from sgweb.tenancy.errors import Conflict, Invalid, NotFound, PermissionDenied
from sgweb.tenancy.models import ApiToken, Project


def test_admin_creates_a_project_with_quota_and_default_group(adam):
    project = actions.create_project(adam, name="charlie-co")
    assert project.quota.security_groups == 10
    assert SecurityGroup.objects.filter(project=project, name="default").exists()
    assert AuditEntry.objects.filter(object_type="project", action="create").exists()


@pytest.mark.parametrize("persona", ["alice", "rita"])
def test_only_admins_create_projects(request, persona):
    user = request.getfixturevalue(persona)
    count = Project.objects.count()
    with pytest.raises(PermissionDenied):
        actions.create_project(user, name="mine")
    assert Project.objects.count() == count


def test_project_names_are_unique(adam, project_a):
    with pytest.raises(Conflict):
        actions.create_project(adam, name=project_a.name)


def test_membership_grants_visibility_and_removal_takes_it_away(adam, charlie, project_a):
    actions.add_member(adam, project_a, charlie)
    assert project_a in visible_projects(charlie)
    actions.remove_member(adam, project_a, charlie)
    assert project_a not in visible_projects(charlie)


def test_reader_sees_every_project(rita, project_a, project_b):
    assert set(visible_projects(rita)) == {project_a, project_b}


def test_negative_quota_other_than_unlimited_is_refused(adam, project_a):
    with pytest.raises(Invalid):
        actions.set_quota(adam, project_a, security_groups=-5)
    assert actions.set_quota(adam, project_a, security_groups=-1).security_groups == -1


def test_token_key_is_returned_once_and_only_its_hash_is_stored(alice):
    token, key = actions.create_api_token(alice, name="laptop")
    assert key not in (token.key_hash, token.prefix)
    assert key.startswith(token.prefix)
    assert ApiToken.objects.get().key_hash == token.key_hash


def test_token_keys_never_start_with_a_dash_that_command_lines_would_read_as_an_option(
    monkeypatch,
):
    drawn = iter(["-starts-like-an-option", "fine-key"])
    monkeypatch.setattr(models.secrets, "token_urlsafe", lambda _n: next(drawn))
    assert models.generate_token_key() == "fine-key"


def test_a_token_needs_a_name(alice):
    with pytest.raises(Invalid):
        actions.create_api_token(alice, name="  ")


def test_users_cannot_revoke_each_others_tokens(alice, bob):
    token, _ = actions.create_api_token(alice, name="laptop")
    with pytest.raises(NotFound):
        actions.revoke_api_token(bob, token)
    actions.revoke_api_token(alice, token)
    assert not ApiToken.objects.exists()


def test_admins_cannot_demote_themselves(adam):
    with pytest.raises(Conflict):
        actions.set_role(adam, adam, "reader")


def test_project_with_ports_cannot_be_deleted(adam, alice, project_a):
    from tests.controlplane.factories import network_with_subnet, port

    network, _ = network_with_subnet(alice, project_a)
    port(alice, project_a, network)
    with pytest.raises(Conflict):
        actions.delete_project(adam, project_a)
