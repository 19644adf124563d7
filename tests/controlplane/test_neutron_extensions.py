"""What the extension list advertises, the API does: filter-validation, shared filtering,
standard-attr-tag, belongs_to_default_sg, the default quotas and a port status that means
something."""

from __future__ import annotations

import pytest
from django.test import override_settings

from sgweb.audit.models import AuditEntry
from sgweb.fwaas import actions as fwaas_actions
from sgweb.networks.choices import HostStatus
from sgweb.networks.models import Host, Port
from sgweb.routers import actions as router_actions
from sgweb.security import actions
from sgweb.security.models import SecurityGroup
from sgweb.tenancy.models import Quota, Tag
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group, network_with_subnet, port


@pytest.fixture
def as_alice(alice):
    return NeutronClient(alice)


def _names(response, plural: str) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["name"] for item in response.json()[plural]}


# --- filter-validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/security-groups", "/security-group-rules", "/networks", "/subnets", "/ports"]
)
def test_an_unknown_filter_is_a_400_naming_it(as_alice, path):
    response = as_alice.get(path, {"colour": "blue", "description": "x"})
    assert response.status_code == 400
    assert error_type(response) == "HTTPBadRequest"
    assert response.json()["NeutronError"]["message"] == (
        "['colour'] is invalid attribute for filtering"
    )


@pytest.mark.parametrize("path", ["/quotas", "/extensions"])
def test_the_quota_and_extension_lists_refuse_an_unknown_filter_too(as_alice, path):
    response = as_alice.get(path, {"colour": "blue"})
    assert response.status_code == 400
    assert error_type(response) == "HTTPBadRequest"
    assert response.json()["NeutronError"]["message"] == (
        "['colour'] is invalid attribute for filtering"
    )


def test_a_members_quota_list_filters_by_project_and_selects_fields(
    alice, as_alice, project_a, project_b
):
    Quota.objects.get_or_create(project=project_a)
    listed = as_alice.get("/quotas").json()["quotas"]
    assert [quota["project_id"] for quota in listed] == [project_a.id.hex]
    narrowed = as_alice.get(
        "/quotas", {"project_id": project_a.id.hex, "fields": "security_group"}
    ).json()["quotas"]
    assert narrowed == [{"security_group": 10}]
    # A project she may not see is not there, filter or not; a malformed id matches nothing.
    assert as_alice.get("/quotas", {"tenant_id": project_b.id.hex}).json()["quotas"] == []
    assert as_alice.get("/quotas", {"project_id": "nope"}).json()["quotas"] == []


def test_the_extension_list_filters_by_alias_and_selects_fields(as_alice):
    answer = as_alice.get(
        "/extensions", {"alias": ["security-group", "binding"], "fields": "alias"}
    )
    assert answer.status_code == 200
    assert sorted(answer.json()["extensions"], key=lambda e: e["alias"]) == [
        {"alias": "binding"},
        {"alias": "security-group"},
    ]


def test_list_parameters_and_known_filters_are_not_refused(as_alice, alice, project_a):
    group(alice, project_a, "web")
    response = as_alice.get(
        "/security-groups",
        {"name": "web", "fields": "name", "limit": "5", "sort_key": "name", "sort_dir": "asc"},
    )
    assert response.json()["security_groups"] == [{"name": "web"}]


def test_changed_since_lists_what_changed_after_a_time(as_alice, alice, project_a):
    old = group(alice, project_a, "old")
    SecurityGroup.objects.filter(id=old.id).update(updated_at="2020-01-01T00:00:00Z")
    group(alice, project_a, "new")
    since = {"changed_since": "2021-01-01T00:00:00Z"}
    assert _names(as_alice.get("/security-groups", since), "security_groups") == {"default", "new"}
    bad = as_alice.get("/security-groups", {"changed_since": "yesterday"})
    assert bad.status_code == 400


def test_subnet_filters_the_cli_sends_are_understood(as_alice, alice, project_a):
    network_with_subnet(alice, project_a)
    assert len(as_alice.get("/subnets", {"ipv6_ra_mode": ""}).json()["subnets"]) == 1
    assert as_alice.get("/subnets", {"service_types": "network:floatingip"}).json() == {
        "subnets": []
    }


# --- shared filtering ----------------------------------------------------------------------


def test_no_group_is_shared_so_shared_true_lists_none_and_false_lists_all(
    as_alice, alice, project_a
):
    group(alice, project_a, "web")
    assert _names(as_alice.get("/security-groups", {"shared": "true"}), "security_groups") == set()
    assert _names(as_alice.get("/security-groups", {"shared": "false"}), "security_groups") == {
        "default",
        "web",
    }
    response = as_alice.get("/security-groups", {"shared": "perhaps"})
    assert response.status_code == 400


# --- tags ----------------------------------------------------------------------------------


def test_tags_are_replaced_added_checked_and_removed_on_a_group(as_alice, alice, project_a):
    web = group(alice, project_a, "web")
    base = f"/security-groups/{web.id}/tags"
    replaced = as_alice.put(base, {"tags": ["prod", "red"]})
    assert (replaced.status_code, replaced.json()) == (200, {"tags": ["prod", "red"]})
    assert as_alice.put(f"{base}/blue", {}).status_code == 201
    assert as_alice.get(base).json() == {"tags": ["blue", "prod", "red"]}
    assert as_alice.get(f"{base}/red").status_code == 204
    missing = as_alice.get(f"{base}/green")
    assert (missing.status_code, error_type(missing)) == (404, "TagNotFound")
    assert as_alice.delete(f"{base}/red").status_code == 204
    assert as_alice.get(f"/security-groups/{web.id}").json()["security_group"]["tags"] == [
        "blue",
        "prod",
    ]
    assert as_alice.delete(base).status_code == 204
    assert as_alice.get(base).json() == {"tags": []}
    assert as_alice.delete(f"{base}/red").status_code == 404


def test_a_tag_change_bumps_the_revision_and_is_audited(as_alice, alice, project_a):
    web = group(alice, project_a, "web")
    before = SecurityGroup.objects.get(id=web.id).revision_number
    as_alice.put(f"/security-groups/{web.id}/tags", {"tags": ["prod"]})
    assert SecurityGroup.objects.get(id=web.id).revision_number == before + 1
    entry = AuditEntry.objects.get(object_id=str(web.id), action="update")
    assert (entry.before, entry.after) == ({"tags": []}, {"tags": ["prod"]})
    as_alice.put(f"/security-groups/{web.id}/tags", {"tags": ["prod"]})
    assert SecurityGroup.objects.get(id=web.id).revision_number == before + 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"tag": ["x"]}, "Invalid tags body"),
        ({"tags": "x"}, "is not a list"),
        ({"tags": ["a", "a"]}, "Duplicate items"),
        ({"tags": ["x" * 256]}, "exceeds maximum length of 255"),
        ({"tags": ["a,b"]}, "comma"),
        ({"tags": [f"t{n}" for n in range(51)]}, "per-resource limit of 50"),
    ],
)
def test_bad_tags_are_refused_and_nothing_changes(as_alice, alice, project_a, body, words):
    web = group(alice, project_a, "web")
    response = as_alice.put(f"/security-groups/{web.id}/tags", body)
    assert response.status_code == 400
    assert words in response.json()["NeutronError"]["message"]
    assert not Tag.objects.exists()


def test_readers_may_not_tag_and_other_projects_do_not_see_the_group(
    alice, charlie, rita, project_a
):
    web = group(alice, project_a, "web")
    refused = NeutronClient(rita).put(f"/security-groups/{web.id}/tags/x", {})
    assert refused.status_code == 403
    hidden = NeutronClient(charlie).put(f"/security-groups/{web.id}/tags/x", {})
    assert (hidden.status_code, error_type(hidden)) == (404, "SecurityGroupNotFound")
    assert not Tag.objects.exists()


def test_tag_filters_select_groups_as_neutron_does(as_alice, alice, project_a):
    for name, tags in (("a", ["red", "blue"]), ("b", ["red"]), ("c", ["green"]), ("d", [])):
        tagged = group(alice, project_a, name)
        as_alice.put(f"/security-groups/{tagged.id}/tags", {"tags": tags})

    def listed(**params: str) -> set[str]:
        return _names(as_alice.get("/security-groups", params), "security_groups") - {"default"}

    assert listed(tags="red,blue") == {"a"}
    assert listed(tags="red") == {"a", "b"}
    assert listed(**{"tags-any": "blue,green"}) == {"a", "c"}
    assert listed(**{"not-tags": "red,blue"}) == {"b", "c", "d"}
    assert listed(**{"not-tags-any": "red,green"}) == {"d"}


def test_rules_networks_and_ports_carry_tags_and_filter_on_them(as_alice, alice, project_a):
    web = group(alice, project_a, "web")
    rule = web.rules.first()
    network, _ = network_with_subnet(alice, project_a)
    vm = port(alice, project_a, network, name="vm")
    for path in (
        f"/security-group-rules/{rule.id}",
        f"/networks/{network.id}",
        f"/ports/{vm.id}",
    ):
        assert as_alice.put(f"{path}/tags", {"tags": ["prod"]}).status_code == 200
        plural = path.split("/")[1].replace("-", "_")
        singular = plural[:-1]
        assert as_alice.get(path).json()[singular]["tags"] == ["prod"]
        listed = as_alice.get(f"/{path.split('/')[1]}", {"tags": "prod"}).json()[plural]
        assert [item["id"] for item in listed] == [path.split("/")[2]]
    nested = as_alice.get(f"/security-groups/{web.id}").json()["security_group"]
    assert {r["id"]: r["tags"] for r in nested["security_group_rules"]}[str(rule.id)] == ["prod"]


def test_tags_given_at_creation_are_set_and_go_with_the_resource(as_alice):
    created = as_alice.post("/security-groups", {"security_group": {"name": "t", "tags": ["x"]}})
    assert created.status_code == 201
    body = created.json()["security_group"]
    assert body["tags"] == ["x"]
    assert as_alice.delete(f"/security-groups/{body['id']}").status_code == 204
    assert not Tag.objects.exists()


def test_a_whole_get_body_sent_back_with_its_tags_is_accepted(as_alice, alice, project_a):
    web = group(alice, project_a, "web")
    as_alice.put(f"/security-groups/{web.id}/tags", {"tags": ["prod"]})
    shown = as_alice.get(f"/security-groups/{web.id}").json()["security_group"]
    shown.pop("security_group_rules")
    shown["description"] = "changed"
    assert as_alice.put(f"/security-groups/{web.id}", {"security_group": shown}).status_code == 200


# --- belongs_to_default_sg -----------------------------------------------------------------


def test_every_rule_says_whether_it_belongs_to_the_default_group(as_alice, alice, project_a):
    web = group(alice, project_a, "web")
    default = actions.ensure_default_group(project_a)
    rules = as_alice.get("/security-group-rules").json()["security_group_rules"]
    by_group = {(r["security_group_id"], r["belongs_to_default_sg"]) for r in rules}
    assert by_group == {(str(web.id), False), (str(default.id), True)}
    shown = as_alice.get(f"/security-group-rules/{web.rules.first().id}").json()
    assert shown["security_group_rule"]["belongs_to_default_sg"] is False
    only_default = as_alice.get("/security-group-rules", {"belongs_to_default_sg": "true"})
    assert {r["security_group_id"] for r in only_default.json()["security_group_rules"]} == {
        str(default.id)
    }


# --- default quotas ------------------------------------------------------------------------


@override_settings(QUOTA_SECURITY_GROUPS=7, QUOTA_SECURITY_GROUP_RULES=70)
def test_default_quotas_are_the_settings_whatever_the_project_has(adam, alice, as_alice, project_a):
    NeutronClient(adam).put(
        f"/quotas/{project_a.id.hex}", {"quota": {"security_group": 3, "security_group_rule": 9}}
    )
    response = as_alice.get(f"/quotas/{project_a.id.hex}/default")
    assert response.status_code == 200
    quota = response.json()["quota"]
    assert (quota["security_group"], quota["security_group_rule"], quota["port"]) == (7, 70, -1)
    assert as_alice.get(f"/quotas/{project_a.id.hex}").json()["quota"]["security_group"] == 3


def test_quota_details_count_what_every_app_keeps_for_the_project(adam, alice, as_alice, project_a):
    network, _ = network_with_subnet(alice, project_a)
    port(adam, project_a, network, name="vm")
    router_actions.create_router(alice, project_a, name="r1")
    fwaas_actions.create_rule(alice, project_a, name="ssh", protocol="tcp", action="allow")
    response = as_alice.get(f"/quotas/{project_a.id.hex}/details")
    assert response.status_code == 200
    used = {name: value["used"] for name, value in response.json()["quota"].items()}
    assert used["network"] == 1 and used["subnet"] == 1 and used["port"] == 1
    assert (used["router"], used["firewall_rule"], used["firewall_policy"]) == (1, 1, 0)
    assert used["security_group"] == SecurityGroup.objects.filter(project=project_a).count()


def test_default_quotas_of_an_unseen_project_are_not_found(charlie, project_a):
    response = NeutronClient(charlie).get(f"/quotas/{project_a.id.hex}/default")
    assert response.status_code == 404


# --- port status ---------------------------------------------------------------------------


def _bound_port(adam, alice, project_a) -> Port:
    network, _ = network_with_subnet(alice, project_a)
    return port(adam, project_a, network, name="vm", host="compute1")


def _status(api: NeutronClient, vm: Port) -> str:
    return api.get(f"/ports/{vm.id}").json()["port"]["status"]


def test_a_port_is_down_until_its_hosts_agent_applied_the_state_that_carries_it(
    adam, alice, as_alice, project_a
):
    vm = _bound_port(adam, alice, project_a)
    assert _status(as_alice, vm) == "DOWN"  # not published yet, no agent
    Port.objects.filter(id=vm.id).update(host_revision=5)  # what a publish does
    Host.objects.filter(name="compute1").update(status=HostStatus.UNKNOWN, applied_revision=5)
    assert _status(as_alice, vm) == "DOWN"  # no agent ever reported
    Host.objects.filter(name="compute1").update(status=HostStatus.SYNCING, applied_revision=4)
    assert _status(as_alice, vm) == "DOWN"  # the agent is behind
    Host.objects.filter(name="compute1").update(status=HostStatus.IN_SYNC, applied_revision=5)
    assert _status(as_alice, vm) == "ACTIVE"
    active = as_alice.get("/ports", {"status": "ACTIVE"}).json()["ports"]
    assert [p["id"] for p in active] == [str(vm.id)]
    Host.objects.filter(name="compute1").update(status=HostStatus.DOWN)
    assert _status(as_alice, vm) == "DOWN"  # heartbeat lost
    assert as_alice.get("/ports", {"status": "ACTIVE"}).json()["ports"] == []


def test_changing_a_port_takes_it_down_until_the_change_is_applied(
    adam, alice, as_alice, project_a
):
    vm = _bound_port(adam, alice, project_a)
    Port.objects.filter(id=vm.id).update(host_revision=5)
    Host.objects.filter(name="compute1").update(status=HostStatus.IN_SYNC, applied_revision=5)
    assert _status(as_alice, vm) == "ACTIVE"
    as_alice.put(f"/ports/{vm.id}", {"port": {"security_groups": []}})
    assert _status(as_alice, vm) == "DOWN"
    assert Port.objects.get(id=vm.id).host_revision is None


def test_an_unbound_or_disabled_port_is_down(adam, alice, as_alice, project_a):
    vm = _bound_port(adam, alice, project_a)
    Port.objects.filter(id=vm.id).update(host_revision=1, admin_state_up=False)
    Host.objects.filter(name="compute1").update(status=HostStatus.IN_SYNC, applied_revision=5)
    assert _status(as_alice, vm) == "DOWN"
