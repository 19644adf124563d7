import json

import pytest

from sgweb.audit.models import AuditEntry
from sgweb.security.models import SecurityGroup, SecurityGroupRule
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import group


@pytest.fixture
def as_alice(alice):
    return NeutronClient(alice)


@pytest.fixture
def as_charlie(charlie):
    return NeutronClient(charlie)


def state() -> tuple[int, int, int]:
    return (
        SecurityGroup.objects.count(),
        SecurityGroupRule.objects.count(),
        AuditEntry.objects.count(),
    )


def test_version_document_lists_v2_without_authentication(client):
    response = client.get("/networking/")
    assert response.status_code == 200
    assert response.json()["versions"][0]["id"] == "v2.0"


def test_request_without_token_gets_401_in_neutron_format(client, alice):
    response = client.get("/networking/v2.0/security-groups")
    assert response.status_code == 401
    assert "NeutronError" in response.json()


def test_request_with_a_wrong_token_gets_401(alice):
    response = NeutronClient(key="not-a-token").get("/security-groups")
    assert response.status_code == 401


def test_expired_token_is_refused(alice):
    from datetime import timedelta

    from django.utils import timezone

    from sgweb.tenancy.models import ApiToken

    api = NeutronClient(alice)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get("/security-groups").status_code == 401


def test_token_use_is_recorded_at_most_once_a_minute(alice, django_assert_num_queries):
    from sgweb.tenancy.models import ApiToken

    api = NeutronClient(alice)
    api.get("/security-groups")
    first = ApiToken.objects.get().last_used_at
    api.get("/security-groups")
    assert ApiToken.objects.get().last_used_at == first is not None


def test_listing_groups_creates_the_default_group_on_first_use(as_alice, project_a):
    response = as_alice.get("/security-groups")
    assert response.status_code == 200
    (default,) = response.json()["security_groups"]
    assert default["name"] == "default"
    assert default["tenant_id"] == default["project_id"] == project_a.id.hex
    assert len(default["security_group_rules"]) == 4


def test_create_show_update_delete_a_group_with_neutron_envelopes(as_alice):
    created = as_alice.post("/security-groups", {"security_group": {"name": "web"}})
    assert created.status_code == 201
    body = created.json()["security_group"]
    assert body["name"] == "web"
    assert body["revision_number"] == 0
    assert {"created_at", "updated_at", "tags", "stateful", "description"} <= set(body)
    shown = as_alice.get(f"/security-groups/{body['id']}")
    assert shown.json()["security_group"]["id"] == body["id"]
    updated = as_alice.put(
        f"/security-groups/{body['id']}", {"security_group": {"description": "front"}}
    )
    assert updated.status_code == 200
    assert updated.json()["security_group"]["description"] == "front"
    assert updated.json()["security_group"]["name"] == "web"  # partial update
    assert updated.json()["security_group"]["revision_number"] == 1
    assert as_alice.delete(f"/security-groups/{body['id']}").status_code == 204
    assert as_alice.get(f"/security-groups/{body['id']}").status_code == 404


def test_json_suffix_is_accepted_like_neutron(as_alice):
    assert as_alice.get("/security-groups.json").status_code == 200


def test_outsider_gets_404_for_a_guessed_group_id_and_nothing_changes(alice, as_charlie, project_a):
    web = group(alice, project_a)
    before = state()
    for response in (
        as_charlie.get(f"/security-groups/{web.id}"),
        as_charlie.put(f"/security-groups/{web.id}", {"security_group": {"name": "pwned"}}),
        as_charlie.delete(f"/security-groups/{web.id}"),
        as_charlie.post(
            "/security-group-rules",
            {"security_group_rule": {"security_group_id": str(web.id), "direction": "ingress"}},
        ),
    ):
        assert response.status_code == 404
        assert error_type(response) == "SecurityGroupNotFound"
    assert state() == before


def test_outsider_does_not_see_other_projects_groups_in_lists(alice, as_charlie, project_a):
    group(alice, project_a)
    names = {g["name"] for g in as_charlie.get("/security-groups").json()["security_groups"]}
    assert names == {"default"}
    rules = as_charlie.get("/security-group-rules").json()["security_group_rules"]
    assert all(r["project_id"] != project_a.id.hex for r in rules)


def test_outsider_cannot_create_in_another_project_by_naming_it(as_charlie, project_a):
    before = state()
    response = as_charlie.post(
        "/security-groups", {"security_group": {"name": "x", "project_id": project_a.id.hex}}
    )
    assert response.status_code == 404
    assert state() == before


def test_reader_sees_every_project_but_writes_get_403(alice, rita, project_a):
    web = group(alice, project_a)
    as_rita = NeutronClient(rita)
    assert as_rita.get(f"/security-groups/{web.id}").status_code == 200
    before = state()
    response = as_rita.put(f"/security-groups/{web.id}", {"security_group": {"name": "x"}})
    assert response.status_code == 403
    assert as_rita.delete(f"/security-groups/{web.id}").status_code == 403
    assert state() == before


def test_admin_may_create_in_any_project_by_passing_tenant_id(adam, project_b):
    response = NeutronClient(adam).post(
        "/security-groups", {"security_group": {"name": "ops", "tenant_id": project_b.id.hex}}
    )
    assert response.status_code == 201
    assert response.json()["security_group"]["project_id"] == project_b.id.hex


def test_duplicate_rule_gets_409_security_group_rule_exists(as_alice, alice, project_a):
    web = group(alice, project_a)
    rule = {
        "security_group_id": str(web.id),
        "direction": "ingress",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": "192.0.2.0/24",
    }
    assert as_alice.post("/security-group-rules", {"security_group_rule": rule}).status_code == 201
    before = state()
    again = as_alice.post("/security-group-rules", {"security_group_rule": rule})
    assert again.status_code == 409
    assert error_type(again) == "SecurityGroupRuleExists"
    assert "already exists" in again.json()["NeutronError"]["message"]
    assert state() == before


def test_group_in_use_gets_409(adam, alice, as_alice, project_a):
    from tests.controlplane.factories import network_with_subnet, port

    web = group(alice, project_a)
    network, _ = network_with_subnet(alice, project_a)
    port(alice, project_a, network, security_groups=[str(web.id)])
    response = as_alice.delete(f"/security-groups/{web.id}")
    assert response.status_code == 409
    assert error_type(response) == "SecurityGroupInUse"


def test_over_quota_gets_409_over_quota(adam, alice, as_alice, project_a):
    from sgweb.tenancy.actions import set_quota

    set_quota(adam, project_a, security_groups=1)
    response = as_alice.post("/security-groups", {"security_group": {"name": "web"}})
    assert response.status_code == 409
    assert error_type(response) == "OverQuota"


def test_invalid_rule_gets_400_invalid_input_with_the_reason(as_alice, alice, project_a):
    web = group(alice, project_a)
    before = state()
    response = as_alice.post(
        "/security-group-rules",
        {
            "security_group_rule": {
                "security_group_id": str(web.id),
                "direction": "ingress",
                "ethertype": "IPv6",
                "remote_ip_prefix": "192.0.2.0/24",
            }
        },
    )
    assert response.status_code == 400
    assert error_type(response) == "SecurityGroupRuleParameterConflict"
    assert "Conflicting value ethertype IPv6" in response.json()["NeutronError"]["message"]
    assert state() == before


def test_unknown_attribute_is_refused(as_alice):
    response = as_alice.post("/security-groups", {"security_group": {"name": "x", "color": 1}})
    assert response.status_code == 400
    assert "Unrecognized attribute" in response.json()["NeutronError"]["message"]


def test_missing_envelope_is_refused(as_alice):
    response = as_alice.post("/security-groups", {"name": "x"})
    assert response.status_code == 400
    assert "Unable to find 'security_group'" in response.json()["NeutronError"]["message"]


def test_filters_by_name_and_repeated_keys_mean_or(as_alice, alice, project_a):
    for name in ("web", "db", "cache"):
        group(alice, project_a, name)
    only = as_alice.get("/security-groups", {"name": "web"}).json()["security_groups"]
    assert [g["name"] for g in only] == ["web"]
    both = as_alice.get("/security-groups?name=web&name=db").json()["security_groups"]
    assert sorted(g["name"] for g in both) == ["db", "web"]


def test_rules_filter_by_security_group_id(as_alice, alice, project_a):
    web = group(alice, project_a)
    rules = as_alice.get("/security-group-rules", {"security_group_id": str(web.id)}).json()
    assert {r["security_group_id"] for r in rules["security_group_rules"]} == {str(web.id)}
    assert len(rules["security_group_rules"]) == 2


def test_fields_selects_the_returned_attributes(as_alice, alice, project_a):
    group(alice, project_a)
    listing = as_alice.get("/security-groups?fields=id&fields=name").json()
    assert all(set(g) == {"id", "name"} for g in listing["security_groups"])


def test_pagination_with_limit_marker_and_links_walks_every_group_once(as_alice, alice, project_a):
    for index in range(5):
        group(alice, project_a, f"g{index}")
    seen: list[str] = []
    response = as_alice.get("/security-groups?limit=2&sort_key=name&sort_dir=asc")
    while True:
        body = response.json()
        seen += [g["name"] for g in body["security_groups"]]
        nexts = [link for link in body.get("security_groups_links", []) if link["rel"] == "next"]
        if not nexts:
            break
        response = as_alice.client.get(nexts[0]["href"], HTTP_X_AUTH_TOKEN=as_alice.key)
    assert seen == ["default", "g0", "g1", "g2", "g3", "g4"]


def test_sorting_descending_by_name(as_alice, alice, project_a):
    for name in ("a", "c", "b"):
        group(alice, project_a, name)
    names = [
        g["name"]
        for g in as_alice.get("/security-groups?sort_key=name&sort_dir=desc").json()[
            "security_groups"
        ]
    ]
    assert names == ["default", "c", "b", "a"]


def test_unknown_path_under_networking_is_a_neutron_404(as_alice):
    response = as_alice.get("/widgets")
    assert response.status_code == 404
    assert "NeutronError" in response.json()


def test_extensions_list_security_group_and_port_security(as_alice):
    aliases = {e["alias"] for e in as_alice.get("/extensions").json()["extensions"]}
    assert {"security-group", "port-security", "binding", "allowed-address-pairs"} <= aliases


def test_bulk_rule_create_is_all_or_nothing(as_alice, alice, project_a):
    web = group(alice, project_a)
    good = {"security_group_id": str(web.id), "direction": "ingress", "protocol": "tcp"}
    bad = {"security_group_id": str(web.id), "direction": "inward"}
    before = state()
    refused = as_alice.post("/security-group-rules", {"security_group_rules": [good, bad]})
    assert refused.status_code == 400
    assert state() == before
    created = as_alice.post(
        "/security-group-rules",
        {"security_group_rules": [good, {**good, "protocol": "udp"}]},
    )
    assert created.status_code == 201
    assert [r["protocol"] for r in created.json()["security_group_rules"]] == ["tcp", "udp"]


def test_if_match_revision_number_refuses_a_stale_update(as_alice, alice, project_a):
    web = group(alice, project_a)
    path = f"/security-groups/{web.id}"
    body = {"security_group": {"name": "renamed"}}
    stale = as_alice.client.put(
        "/networking/v2.0" + path, json.dumps(body), content_type="application/json",
        HTTP_X_AUTH_TOKEN=as_alice.key, HTTP_IF_MATCH="revision_number=7",
    )  # fmt: skip
    assert stale.status_code == 412
    assert error_type(stale) == "RevisionNumberConstraintFailed"
    fresh = as_alice.client.put(
        "/networking/v2.0" + path, json.dumps(body), content_type="application/json",
        HTTP_X_AUTH_TOKEN=as_alice.key, HTTP_IF_MATCH="revision_number=0",
    )  # fmt: skip
    assert fresh.status_code == 200


def test_previous_link_leads_back_to_the_first_page(as_alice, alice, project_a):
    for index in range(3):
        group(alice, project_a, f"g{index}")
    first = as_alice.get("/security-groups?limit=2&sort_key=name").json()
    second_href = first["security_groups_links"][0]["href"]
    second = as_alice.client.get(second_href, HTTP_X_AUTH_TOKEN=as_alice.key).json()
    previous = [link for link in second["security_groups_links"] if link["rel"] == "previous"]
    back = as_alice.client.get(previous[0]["href"], HTTP_X_AUTH_TOKEN=as_alice.key).json()
    assert [g["name"] for g in back["security_groups"]] == [
        g["name"] for g in first["security_groups"]
    ]


def test_rules_are_immutable_like_neutrons(as_alice, alice, project_a):
    web = group(alice, project_a)
    rule = web.rules.first()
    response = as_alice.put(f"/security-group-rules/{rule.id}", {"security_group_rule": {}})
    assert response.status_code == 405
    assert "NeutronError" in response.json()


def test_bearer_authorization_header_works_too(client, alice):
    from sgweb.tenancy.actions import create_api_token

    _, key = create_api_token(alice, name="curl")
    response = client.get("/networking/v2.0/ports", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200


def test_a_bulk_create_sends_one_live_event_for_all_its_rules(
    as_alice, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    web, db = group(alice, project_a, "web"), group(alice, project_a, "db")
    bodies = [
        {"security_group_id": str(owner.id), "direction": "ingress", "protocol": "tcp",
         "port_range_min": port, "port_range_max": port}
        for owner in (web, db) for port in (80, 443, 8080)
    ]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        created = as_alice.post("/security-group-rules", {"security_group_rules": bodies})
    assert created.status_code == 201
    assert [kind for kind, _, _ in dispatched["events"]] == ["changes"]
    _, message, scope = dispatched["events"][0]
    assert scope == f"project:{project_a.id.hex}"
    assert message["project_id"] == str(project_a.id)
    assert [change["object_id"] for change in message["changes"]] == [
        rule["id"] for rule in created.json()["security_group_rules"]
    ]


def test_a_bulk_create_of_one_rule_sends_the_change_as_it_always_did(
    as_alice, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    web = group(alice, project_a)
    body = {"security_group_id": str(web.id), "direction": "ingress", "protocol": "udp"}
    with django_capture_on_commit_callbacks(execute=True):
        as_alice.post("/security-group-rules", {"security_group_rules": [body]})
    assert [(kind, event["type"]) for kind, event, _ in dispatched["events"]] == [
        ("change", "change")
    ]


def test_a_refused_bulk_create_sends_no_live_event(
    as_alice, alice, project_a, dispatched, django_capture_on_commit_callbacks
):
    web = group(alice, project_a)
    good = {"security_group_id": str(web.id), "direction": "ingress", "protocol": "tcp"}
    with django_capture_on_commit_callbacks(execute=True):
        refused = as_alice.post(
            "/security-group-rules", {"security_group_rules": [good, {**good, "direction": "x"}]}
        )
    assert refused.status_code == 400
    assert dispatched["events"] == []
