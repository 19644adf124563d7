"""No N+1: every list and detail page runs the same number of queries whatever the row count."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sgweb.audit.models import AuditEntry
from sgweb.networks.models import Host, Network, Port
from sgweb.security.models import SecurityGroup
from tests.dashboard.conftest import World
from tests.dashboard.demo import seed_bulk

pytestmark = pytest.mark.django_db

# Page -> the most queries it may run (session, user, profile and memberships included).
PAGES: dict[str, tuple[int, Callable[[World], str]]] = {
    "overview": (16, lambda w: "/"),
    "group list": (10, lambda w: "/security-groups"),
    # +2: the kept accounting (the rules' series and their totals, constant).
    # +1 with the daily-use changes (still constant in rows: the assert below checks it).
    "group detail": (17, lambda w: f"/security-groups/{w.web.pk}"),
    "port list": (14, lambda w: "/ports"),
    # The chains' first paint asks the compiled-host cache (4 aggregate queries: its key).
    # +2: the port's kept traffic (its series and its origins' totals, constant).
    "port detail": (20, lambda w: f"/ports/{w.port_a.pk}"),
    "network list": (10, lambda w: "/networks"),
    "network detail": (10, lambda w: f"/networks/{w.network_a.pk}"),
    "host list": (9, lambda w: "/hosts"),
    # +2: the pending publishes and the port count behind the content digest (constant); +2
    # for those who see every project: the host chains' series and accounting state.
    "host detail": (14, lambda w: f"/hosts/{w.host.name}"),
    "project list": (9, lambda w: "/projects"),
    "project detail": (10, lambda w: f"/projects/{w.people.project_a.pk}"),
    "audit list": (12, lambda w: "/audit"),
    "audit detail": (
        10,
        lambda w: f"/audit/{AuditEntry.objects.filter(project=w.people.project_a).latest('at').pk}",
    ),
    "token list": (8, lambda w: "/tokens"),
    "user list": (10, lambda w: "/users"),
}


def _grow(world: World) -> None:
    """Many more rows of every kind, all of them visible to alice on the pages above."""
    project = world.people.project_a
    seed_bulk(project, ports=60, rules=40, groups=30)
    bulk_group = SecurityGroup.objects.filter(name__startswith="bulk-group").first()
    for port in Port.objects.filter(name__startswith="bulk-port")[:30]:
        port.group_links.create(security_group=world.web, position=1)
    for index in range(30):
        world.web.rules.create(
            project=project,
            direction="ingress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=1000 + index,
            port_range_max=1000 + index,
            remote_group=bulk_group,
        )
    Port.objects.filter(name__startswith="bulk-port").update(host=world.host)
    for index in range(20):
        Host.objects.create(name=f"extra-{index:02d}")
        Network.objects.create(project=project, name=f"extra-net-{index}")
    from tests.personas import make_user

    for index in range(30):
        make_user(f"user-{index:02d}", "member", project)
    AuditEntry.objects.bulk_create(
        AuditEntry(
            actor=world.people.alice,
            project=project,
            action="update",
            object_type="security_group",
            object_id=str(world.web.pk),
            object_repr="web",
            before={"name": "a"},
            after={"name": "b"},
        )
        for _ in range(60)
    )


def _count(client: Client, path: str, warm: bool = False) -> int:
    if warm:
        # The port page's chains come from a cache of compiled hosts, rebuilt when a host's
        # state changes by the backend's desired-state builder; what is measured is the page.
        client.get(path)
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(context.captured_queries)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_query_count_does_not_grow_with_rows(
    page: str, world: World, as_alice: Client, as_adam: Client, django_assert_max_num_queries
) -> None:
    # The user list is for admins and readers; every other page is measured as a member.
    client = as_adam if page == "user list" else as_alice
    limit, path_of = PAGES[page]
    warm = page == "port detail"
    small = _count(client, path_of(world), warm)
    _grow(world)
    path = path_of(world)
    if warm:
        client.get(path)
    with django_assert_max_num_queries(limit):
        large = _count(client, path)
    print(f"{page}: {large} queries")
    assert large == small, f"{page}: {small} queries with few rows, {large} with many"
