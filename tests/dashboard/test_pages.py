"""Every page renders for the people who may see it, with what they need on it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.dashboard.conftest import World

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_login_page(world: World) -> None:
    response = Client().get("/security-groups")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login")


def test_login_page_renders_and_logs_in(world: World) -> None:
    client = Client()
    page = client.get("/accounts/login")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post(
        "/accounts/login",
        {"username": "alice", "password": "correct horse battery staple", "next": "/"},
    )
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_wrong_password_shows_an_error_on_the_login_page(world: World) -> None:
    page = Client().post("/accounts/login", {"username": "alice", "password": "nope"})
    assert page.status_code == 200
    assert b"form-errors" in page.content


def test_logout_ends_the_session(as_alice: Client) -> None:
    assert as_alice.post("/accounts/logout").status_code == 302
    assert as_alice.get("/").status_code == 302


def _pages(world: World) -> list[str]:
    return [
        "/",
        "/security-groups",
        "/security-groups/new",
        f"/security-groups/{world.web.pk}",
        "/ports",
        f"/ports/{world.port_a.pk}",
        "/networks",
        "/networks/new",
        f"/networks/{world.network_a.pk}",
        "/hosts",
        f"/hosts/{world.host.name}",
        "/projects",
        f"/projects/{world.people.project_a.pk}",
        "/audit",
        "/tokens",
        "/help/keyboard",
    ]


def test_every_page_renders_for_a_member(world: World, as_alice: Client) -> None:
    for path in _pages(world):
        response = as_alice.get(path)
        assert response.status_code == 200, path


def test_every_page_renders_for_an_admin_and_a_reader(
    world: World, as_adam: Client, as_rita: Client
) -> None:
    for client in (as_adam, as_rita):
        for path in _pages(world):
            if path.endswith("/new") and client is as_rita:
                continue
            assert client.get(path).status_code == 200, path


def test_new_project_page_is_for_admins(as_adam: Client, as_alice: Client) -> None:
    assert as_adam.get("/projects/new").status_code == 200
    assert as_alice.get("/projects/new").status_code == 403


def test_overview_shows_hosts_counts_and_recent_changes(world: World, as_alice: Client) -> None:
    page = as_alice.get("/").content.decode()
    assert "compute-1" in page
    assert "Recent changes" in page
    assert "web" in page


def test_group_page_lists_rules_with_ids_ports_and_an_empty_hits_column(
    world: World, as_alice: Client
) -> None:
    page = as_alice.get(f"/security-groups/{world.web.pk}").content.decode()
    for rule in world.web.rules.all():
        assert f'data-rule-id="{rule.pk}"' in page
    assert "203.0.113.0/24" in page
    assert "data-hits" in page and "data-last-hit" in page
    assert "web-1" in page  # the port using the group


def test_group_list_shows_rule_and_port_counts(world: World, as_alice: Client) -> None:
    page = as_alice.get("/security-groups").content.decode()
    assert f'data-group-id="{world.web.pk}"' in page
    # Two egress rules from creation and the SSH rule.
    assert "data-rule-count>3<" in page


def test_group_list_search_finds_by_name_and_by_id_prefix(world: World, as_alice: Client) -> None:
    by_name = as_alice.get("/security-groups", {"q": "web"}).content.decode()
    assert f'data-group-id="{world.web.pk}"' in by_name
    by_id = as_alice.get("/security-groups", {"q": str(world.web.pk)[:8]}).content.decode()
    assert f'data-group-id="{world.web.pk}"' in by_id
    nothing = as_alice.get("/security-groups", {"q": "no-such-group"}).content.decode()
    assert f'data-group-id="{world.web.pk}"' not in nothing
    assert "No group matches" in nothing


def test_port_list_filters_by_group_host_and_address(world: World, as_alice: Client) -> None:
    port = f'data-port-id="{world.port_a.pk}"'
    assert port in as_alice.get("/ports", {"group": str(world.web.pk)}).content.decode()
    assert port in as_alice.get("/ports", {"host": "compute-1"}).content.decode()
    assert port not in as_alice.get("/ports", {"host": "-"}).content.decode()
    address = world.port_a.fixed_ips.first().ip_address
    assert port in as_alice.get("/ports", {"q": address}).content.decode()
    assert port in as_alice.get("/ports", {"q": world.port_a.device}).content.decode()


def test_port_page_shows_addresses_device_and_the_firewall_chains_section(
    world: World, as_alice: Client
) -> None:
    port = world.port_a
    page = as_alice.get(f"/ports/{port.pk}").content.decode()
    assert port.mac_address in page
    assert port.device in page
    assert "Firewall chains" in page
    short = str(port.pk)[:10]
    for letter in "ios":
        assert f"neutron-openvswi-{letter}{short}" in page


def test_host_list_filters_by_state(world: World, as_adam: Client) -> None:
    page = as_adam.get("/hosts", {"status": "failed"}).content.decode()
    assert 'data-host="compute-1"' not in page
    page = as_adam.get("/hosts").content.decode()
    assert 'data-host="compute-1"' in page


def test_pagination_keeps_the_filters(world: World, as_adam: Client) -> None:
    from tests.dashboard.demo import seed_bulk

    seed_bulk(world.people.project_a, ports=120, rules=10, groups=2)
    page = as_adam.get("/ports", {"q": "bulk-port", "page": "2"}).content.decode()
    assert "51\u2013100 of 120" in page
    assert "q=bulk-port&amp;page=3" in page or "page=3&amp;q=bulk-port" in page


def test_switching_project_narrows_the_lists(world: World, as_adam: Client) -> None:
    response = as_adam.post(
        reverse("dashboard:switch_project"),
        {"project": str(world.people.project_b.pk), "next": "/security-groups"},
    )
    assert response.status_code == 302
    page = as_adam.get("/security-groups").content.decode()
    assert f'data-group-id="{world.group_b.pk}"' in page
    assert f'data-group-id="{world.web.pk}"' not in page


def test_switching_to_an_unseeable_project_widens_nothing(world: World, as_alice: Client) -> None:
    as_alice.post(
        reverse("dashboard:switch_project"),
        {"project": str(world.people.project_b.pk), "next": "/ports"},
    )
    page = as_alice.get("/ports").content.decode()
    assert f'data-port-id="{world.port_b.pk}"' not in page


def test_overview_lists_hosts_needing_attention_first(world: World, as_adam: Client) -> None:
    from sgweb.networks.models import Host

    for index in range(15):
        Host.objects.create(name=f"aaa-{index:02d}", status="in-sync")
    Host.objects.create(name="zzz-broken", status="failed", last_error="iptables-restore: line 3")
    page = as_adam.get("/").content.decode()
    assert 'data-host="zzz-broken"' in page
    assert page.index('data-host="zzz-broken"') < page.index('data-host="aaa-00"')
    assert "iptables-restore: line 3" in page


def test_an_admin_on_a_fresh_install_is_told_to_create_a_project_first(db) -> None:
    from tests.dashboard.conftest import client_for
    from tests.personas import make_user

    admin = client_for(make_user("root", "admin"))
    for path in ("/security-groups/new", "/networks/new"):
        page = admin.get(path)
        assert page.status_code == 200
        assert "There is no project yet" in page.content.decode()
    assert admin.get("/").status_code == 200


def test_hosts_are_alive_or_down_by_their_agents_heartbeats(
    world: World, as_adam: Client, heartbeats: dict[str, object]
) -> None:
    import time

    from sgweb.hostsync.status import Liveness
    from sgweb.networks.models import Host

    Host.objects.create(name="compute-2", status="in-sync", applied_revision=3, desired_revision=3)
    heartbeats["compute-1"] = Liveness(
        "compute-1", True, last_seen=time.time(), applied_revision=0, agent_status="in-sync", pid=42
    )
    page = as_adam.get("/hosts").content.decode()
    row = page[page.index('data-host="compute-2"') :]
    assert "Down" in row[: row.index("</tr>")]
    row = page[page.index('data-host="compute-1"') :]
    assert "In sync" in row[: row.index("</tr>")]
    down_only = as_adam.get("/hosts", {"status": "down"}).content.decode()
    assert 'data-host="compute-2"' in down_only and 'data-host="compute-1"' not in down_only
    detail = as_adam.get("/hosts/compute-1").content.decode()
    assert "pid 42" in detail


def test_host_page_shows_the_agents_events(world: World, as_adam: Client) -> None:
    from sgweb.hostsync.models import HostEvent

    HostEvent.objects.create(
        host=world.host,
        kind="drift",
        revision=7,
        duration_ms=4,
        message="kernel differed from revision 7 (chains: 1); repaired",
    )
    HostEvent.objects.create(
        host=world.host,
        kind="apply-failed",
        revision=8,
        message="iptables-restore failed (line: -A neutron-openvswi-ixx)",
    )
    page = as_adam.get(f"/hosts/{world.host.name}").content.decode()
    assert "Drift found" in page and "repaired" in page
    assert "Apply failed" in page and "neutron-openvswi-ixx" in page


def test_host_page_shows_a_bypass_in_words_while_the_agent_reports_it(
    world: World, as_adam: Client
) -> None:
    from sgweb.hostsync.records import record_drift

    bypass = "IPv4 filter FORWARD: rule 1 `-j ACCEPT` is ahead of our jumps; a bypass."
    record_drift({"host": world.host.name, "words": [bypass], "alerts": [bypass],
                  "repairs": ["our 2 jumps put back first."], "repaired": True})  # fmt: skip
    page = as_adam.get(f"/hosts/{world.host.name}").content.decode()
    assert f'data-drift-alerts="{world.host.name}">' in page
    assert "rule 1 `-j ACCEPT` is ahead of our jumps" in page
    assert "our 2 jumps put back first." in page
    record_drift({"host": world.host.name, "words": [], "alerts": []})
    page = as_adam.get(f"/hosts/{world.host.name}").content.decode()
    assert f'data-drift-alerts="{world.host.name}" hidden>' in page and "Last drift found" in page
