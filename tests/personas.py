"""Test personas shared by the control-plane and dashboard tests (like Healthchecks' BaseTestCase).

- alice: member of project A ("alpha")
- bob: alice's teammate, also a member of project A
- charlie: an outsider, member of project B ("bravo") only
- rita: a reader (the security team), sees every project, changes nothing
- adam: an admin

Register them in a conftest with `from tests.personas import *  # noqa: F403`.
The password of every persona is PASSWORD.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from sgweb.tenancy.choices import Role
from sgweb.tenancy.models import Membership, Profile, Project, Quota

PASSWORD = "correct horse battery staple"

__all__ = [
    "PASSWORD",
    "Personas",
    "adam",
    "alice",
    "bob",
    "charlie",
    "make_user",
    "personas",
    "project_a",
    "project_b",
    "rita",
]


def make_user(username: str, role: str = Role.MEMBER, *projects: Project) -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    Profile.objects.create(user=user, role=role)
    for project in projects:
        Membership.objects.create(user=user, project=project)
    return user


@pytest.fixture
def project_a(db) -> Project:
    project = Project.objects.create(name="alpha", description="Alice's project")
    Quota.objects.create(project=project)
    return project


@pytest.fixture
def project_b(db) -> Project:
    project = Project.objects.create(name="bravo", description="Charlie's project")
    Quota.objects.create(project=project)
    return project


@pytest.fixture
def alice(project_a: Project) -> User:
    return make_user("alice", Role.MEMBER, project_a)


@pytest.fixture
def bob(project_a: Project) -> User:
    return make_user("bob", Role.MEMBER, project_a)


@pytest.fixture
def charlie(project_b: Project) -> User:
    return make_user("charlie", Role.MEMBER, project_b)


@pytest.fixture
def rita(db) -> User:
    return make_user("rita", Role.READER)


@pytest.fixture
def adam(db) -> User:
    return make_user("adam", Role.ADMIN)


@dataclass
class Personas:
    alice: User
    bob: User
    charlie: User
    rita: User
    adam: User
    project_a: Project
    project_b: Project


@pytest.fixture
def personas(alice, bob, charlie, rita, adam, project_a, project_b) -> Personas:
    return Personas(alice, bob, charlie, rita, adam, project_a, project_b)
