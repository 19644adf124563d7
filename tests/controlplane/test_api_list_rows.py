"""Lists built from `.values()` rows answer exactly what the model-built dictionaries say."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework.renderers import JSONRenderer

from sgweb.api.query import driver_rows
from sgweb.networks.choices import HostStatus, PortStatus
from sgweb.networks.models import Host, Port
from sgweb.networks.representation import PORT_COLUMNS, port_row_to_dict, port_to_dict
from sgweb.security import actions as security_actions
from sgweb.security.models import SecurityGroup
from sgweb.security.representation import group_to_dict
from sgweb.tenancy.representation import neutron_time, uuid_hex, uuid_text
from tests.controlplane.api_helpers import NeutronClient
from tests.controlplane.factories import group, network_with_subnet, port


def _drf_bytes(data) -> bytes:
    return bytes(JSONRenderer().render(data, "application/json", {}))


def _ports_of_every_kind(alice, adam, project_a) -> list[Port]:
    """Unbound, bound and down, bound and active, administratively down, with address pairs,
    several groups in a given order, no groups, unicode names (adam, an admin, binds)."""
    web, db = group(alice, project_a, "web"), group(alice, project_a, "dß ☃")
    network, _ = network_with_subnet(alice, project_a)
    ports = [
        port(alice, project_a, network, name="unbound"),
        port(adam, project_a, network, name="bound", host="compute-1"),
        port(
            adam, project_a, network, name="active ünï", host="compute-2",
            security_groups=[str(db.id), str(web.id)],
            allowed_address_pairs=[{"ip_address": "198.51.100.7"}],
            fixed_ips=[{"ip_address": "192.0.2.50"}],
        ),
        port(alice, project_a, network, name="no groups", security_groups=[]),
        port(adam, project_a, network, name="down", host="compute-2", admin_state_up=False),
    ]  # fmt: skip
    # compute-2's agent is alive and applied every revision: its up port is ACTIVE.
    Host.objects.filter(name="compute-2").update(status=HostStatus.IN_SYNC, applied_revision=99)
    Port.objects.filter(host__name="compute-2").update(host_revision=5)
    return ports


def test_the_ports_list_reads_as_each_port_shown_alone(alice, adam, project_a):
    ports = _ports_of_every_kind(alice, adam, project_a)
    api = NeutronClient(alice)
    assert api.put(f"/ports/{ports[2].id}/tags/ünïcode", {}).status_code == 201
    listed = api.get("/ports")
    assert listed.status_code == 200
    assert listed.content == _drf_bytes(listed.data)
    by_id = {data["id"]: data for data in listed.json()["ports"]}
    assert len(by_id) == len(ports)
    for made in ports:
        shown = api.get(f"/ports/{made.id}")
        assert by_id[str(made.id)] == shown.json()["port"]
        fresh = Port.objects.select_related("host").get(pk=made.pk)
        assert {**port_to_dict(fresh), "tags": by_id[str(made.id)]["tags"]} == by_id[str(made.id)]
    statuses = {data["name"]: data["status"] for data in by_id.values()}
    assert statuses == {
        "unbound": PortStatus.DOWN,
        "bound": PortStatus.DOWN,
        "active ünï": PortStatus.ACTIVE,
        "no groups": PortStatus.DOWN,
        "down": PortStatus.DOWN,
    }
    assert by_id[str(ports[2].id)]["tags"] == ["ünïcode"]


def test_a_page_of_ports_by_rows_links_to_the_next_and_previous_pages(alice, adam, project_a):
    ports = _ports_of_every_kind(alice, adam, project_a)
    api = NeutronClient(alice)
    first = api.get("/ports", {"limit": 2, "fields": "id"}).json()
    ordered = sorted(str(made.id) for made in ports)
    assert [data["id"] for data in first["ports"]] == ordered[:2]
    next_link = next(link for link in first["ports_links"] if link["rel"] == "next")
    assert f"marker={ordered[1]}" in next_link["href"]
    second = api.get("/ports", {"limit": 2, "marker": ordered[1], "sort_key": "id"}).json()
    assert [data["id"] for data in second["ports"]] == ordered[2:4]
    previous = next(link for link in second["ports_links"] if link["rel"] == "previous")
    assert f"marker={ordered[2]}" in previous["href"]


def test_the_security_groups_list_reads_as_each_group_shown_alone(alice, project_a):
    web = group(alice, project_a, "wéb ☃")
    rule = security_actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22,
        remote_ip_prefix="198.51.100.0/24", description="ssh ünï",
    )  # fmt: skip
    group(alice, project_a, "empty")
    api = NeutronClient(alice)
    assert api.put(f"/security-groups/{web.id}/tags/blue", {}).status_code == 201
    assert api.put(f"/security-group-rules/{rule.id}/tags/ssh", {}).status_code == 201
    # Twice: the first listing fills the rules cache, the second reads from it.
    for _ in range(2):
        listed = api.get("/security-groups")
        assert listed.status_code == 200
        assert listed.content == _drf_bytes(listed.data)
        groups = listed.json()["security_groups"]
        assert {data["name"] for data in groups} == {"wéb ☃", "empty", "default"}
        for data in groups:
            assert api.get(f"/security-groups/{data['id']}").json()["security_group"] == data
            model = SecurityGroup.objects.get(pk=data["id"])
            expected = group_to_dict(model, model.rules.order_by("created_at", "id"))
            assert {**expected, "tags": data["tags"]} == {
                **data,
                "security_group_rules": [
                    {**rule, "tags": []} for rule in data["security_group_rules"]
                ],
            }
    by_name = {data["name"]: data for data in groups}
    assert by_name["wéb ☃"]["tags"] == ["blue"]
    ssh = next(r for r in by_name["wéb ☃"]["security_group_rules"] if r["id"] == str(rule.id))
    assert ssh["tags"] == ["ssh"]
    assert all(r["belongs_to_default_sg"] for r in by_name["default"]["security_group_rules"])


def test_rows_read_by_the_driver_say_what_django_s_rows_say(alice, adam, project_a):
    _ports_of_every_kind(alice, adam, project_a)
    ports = Port.objects.order_by("id").values(*PORT_COLUMNS)
    by_django, by_driver = list(ports), driver_rows(ports)
    assert len(by_driver) == len(by_django) == 5
    for django_row, driver_row in zip(by_django, by_driver, strict=True):
        assert uuid_text(driver_row["id"]) == str(django_row["id"])
        assert uuid_hex(driver_row["project_id"]) == django_row["project_id"].hex
        assert port_row_to_dict(driver_row, fixed_ips=[], pairs=[], group_ids=[]) == (
            port_row_to_dict(django_row, fixed_ips=[], pairs=[], group_ids=[])
        )
    assert driver_rows(ports.none()) == []


def test_an_outsider_s_list_of_ports_is_empty(alice, adam, project_a, charlie):
    _ports_of_every_kind(alice, adam, project_a)
    listed = NeutronClient(charlie).get("/ports")
    assert listed.status_code == 200
    assert listed.json() == {"ports": []}


def test_the_rules_list_reads_as_each_rule_shown_alone(alice, project_a):
    web = group(alice, project_a, "wéb ☃")
    security_actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22,
        remote_group_id=str(web.id), description="ssh ünï",
    )  # fmt: skip
    api = NeutronClient(alice)
    api.get("/security-groups")  # the project's default group and its rules
    listed = api.get("/security-group-rules")
    assert listed.status_code == 200
    assert listed.content == _drf_bytes(listed.data)
    rules = listed.json()["security_group_rules"]
    assert {rule["belongs_to_default_sg"] for rule in rules} == {True, False}
    for data in rules:
        assert api.get(f"/security-group-rules/{data['id']}").json() == {
            "security_group_rule": data
        }


def test_a_time_read_as_postgresqls_text_prints_as_the_same_neutron_time():
    # driver_cursor reads timestamptz as the server's text on PostgreSQL (a UTC session).
    moment = datetime(2016, 10, 4, 12, 14, 57, 123456, tzinfo=UTC)
    assert neutron_time("2016-10-04 12:14:57.123456+00") == neutron_time(moment)
    assert neutron_time("2016-10-04 12:14:57+00") == "2016-10-04T12:14:57Z"
    assert neutron_time("2016-10-04 14:14:57.5+02") == "2016-10-04T12:14:57Z"


def test_rows_read_by_the_driver_name_their_ids_and_times_as_django_s_rows_do(
    alice, adam, project_a
):
    _ports_of_every_kind(alice, adam, project_a)
    ports = Port.objects.order_by("id").values("id", "created_at", "updated_at")
    for django_row, driver_row in zip(ports, driver_rows(ports), strict=True):
        assert uuid_text(driver_row["id"]) == str(django_row["id"])
        assert neutron_time(driver_row["created_at"]) == neutron_time(django_row["created_at"])
        assert neutron_time(driver_row["updated_at"]) == neutron_time(django_row["updated_at"])
