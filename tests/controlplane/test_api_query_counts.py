"""List and detail endpoints cost a fixed number of queries, whatever the number of rows."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sgweb.api.auth import token_checks
from sgweb.security import actions
from sgweb.security.representation import group_rules_cache
from tests.controlplane.api_helpers import NeutronClient
from tests.controlplane.factories import group, network_with_subnet, port

ENDPOINTS = ["/security-groups", "/security-group-rules", "/ports", "/networks", "/subnets"]


def grow(adam, alice, project_a, network, rounds: int) -> None:
    for index in range(rounds):
        web = group(alice, project_a, f"g{network.name}{index}")
        actions.create_security_group_rule(
            alice, web, direction="ingress", protocol="tcp", port_range_min=22, port_range_max=22
        )
        port(
            adam, project_a, network, host=f"compute{index}",
            security_groups=[str(web.id)],
            allowed_address_pairs=[{"ip_address": f"198.51.100.{index + 1}"}],
        )  # fmt: skip


def queries(api: NeutronClient, path: str) -> int:
    # Cold: the groups' rules cache would save the rules query only on the second listing, the
    # token checks' cache the token and membership queries (and another test process sharing
    # Redis may empty it at any time).
    group_rules_cache.clear()
    token_checks.clear()
    with CaptureQueriesContext(connection) as captured:
        assert api.get(path).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("persona", ["alice", "adam", "rita"])
def test_list_endpoints_cost_the_same_queries_for_two_or_eight_objects(
    request, persona, adam, alice, rita, project_a
):
    api = NeutronClient(request.getfixturevalue(persona))
    network, _ = network_with_subnet(alice, project_a)
    grow(adam, alice, project_a, network, 2)
    # Token last_used_at, default groups and each kind's content type (read once per process,
    # for tags) settle.
    for path in ENDPOINTS:
        api.get(path)
    few = {path: queries(api, path) for path in ENDPOINTS}
    grow(adam, alice, project_a, network, 6)
    many = {path: queries(api, path) for path in ENDPOINTS}
    assert many == few
    assert max(few.values()) <= 8


def test_detail_endpoints_cost_a_handful_of_queries(adam, alice, project_a):
    api = NeutronClient(alice)
    network, _ = network_with_subnet(alice, project_a)
    grow(adam, alice, project_a, network, 3)
    api.get("/security-groups")
    web = actions.ensure_default_group(project_a)
    vm = port(alice, project_a, network)
    assert queries(api, f"/security-groups/{web.id}") <= 6
    assert queries(api, f"/ports/{vm.id}") <= 8


def test_a_listing_reads_only_the_rules_of_groups_whose_revision_it_has_not_seen(
    adam, alice, project_a
):
    api = NeutronClient(alice)
    web = group(alice, project_a, "web")
    group(alice, project_a, "db")
    group_rules_cache.clear()
    first = api.get("/security-groups").json()["security_groups"]
    with CaptureQueriesContext(connection) as captured:
        again = api.get("/security-groups").json()["security_groups"]
    assert again == first
    # No rule is read again; the page's rule tags are looked up through the rules' group ids
    # (tags joined to the rules), not a parameter per rule.
    reads = [q["sql"] for q in captured.captured_queries if "securitygrouprule" in q["sql"]]
    assert len(reads) == 1
    assert reads[0].startswith('SELECT t.object_id, t.tag FROM "tenancy_tag" t JOIN'), reads
    # A new rule bumps the group's revision: the next listing shows it.
    rule = actions.create_security_group_rule(
        alice, web, direction="ingress", protocol="tcp", port_range_min=443, port_range_max=443
    )
    listed = {g["id"]: g for g in api.get("/security-groups").json()["security_groups"]}
    assert str(rule.id) in {r["id"] for r in listed[str(web.id)]["security_group_rules"]}
    actions.delete_security_group_rule(alice, rule)
    listed = {g["id"]: g for g in api.get("/security-groups").json()["security_groups"]}
    assert str(rule.id) not in {r["id"] for r in listed[str(web.id)]["security_group_rules"]}
