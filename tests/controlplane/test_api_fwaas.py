"""Routers and FWaaS v2 in the Neutron API: JSON shapes, member actions, Neutron errors,
and what other projects see."""

from __future__ import annotations

from sgweb.networks.actions import create_host
from sgweb.routers.models import Router
from tests.controlplane.api_helpers import NeutronClient, error_type
from tests.controlplane.factories import network_with_subnet


def test_a_member_builds_a_router_and_its_interface_in_neutrons_shapes(adam, alice, project_a):
    create_host(adam, name="network1", network_node=True)
    _, subnet = network_with_subnet(alice, project_a)
    api = NeutronClient(alice)
    created = api.post("/routers", {"router": {"name": "r1", "admin_state_up": True}})
    assert created.status_code == 201
    router = created.json()["router"]
    assert router["external_gateway_info"] is None
    assert (router["status"], router["project_id"]) == ("PENDING", project_a.id.hex)
    added = api.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": str(subnet.id)})
    assert added.status_code == 200
    body = added.json()
    assert (body["id"], body["subnet_id"], body["subnet_ids"]) == (
        router["id"], str(subnet.id), [str(subnet.id)],
    )  # fmt: skip
    port = api.get(f"/ports/{body['port_id']}").json()["port"]
    assert port["device_owner"] == "network:router_interface"
    assert port["fixed_ips"] == [{"subnet_id": str(subnet.id), "ip_address": "192.0.2.1"}]
    in_use = api.delete(f"/routers/{router['id']}")
    assert (in_use.status_code, error_type(in_use)) == (409, "RouterInUse")
    twice = api.put(f"/routers/{router['id']}/add_router_interface", {"subnet_id": str(subnet.id)})
    assert (twice.status_code, error_type(twice)) == (400, "BadRequest")
    listed = api.get("/routers", {"status": "PENDING"}).json()["routers"]
    assert [r["name"] for r in listed] == ["r1"]
    gateway = api.post(
        "/routers", {"router": {"name": "r2", "external_gateway_info": {"network_id": "x"}}}
    )
    assert gateway.status_code == 400
    assert "external_gateway_info is not supported" in gateway.json()["NeutronError"]["message"]
    removed = api.put(
        f"/routers/{router['id']}/remove_router_interface", {"subnet_id": str(subnet.id)}
    )
    assert removed.status_code == 200
    assert api.delete(f"/routers/{router['id']}").status_code == 204


def test_firewall_rules_policies_and_groups_answer_in_neutrons_shapes(alice, project_a):
    api = NeutronClient(alice)
    rule = api.post(
        "/fwaas/firewall_rules",
        {"firewall_rule": {"name": "deny-db", "protocol": "tcp", "ip_version": "4",
                           "destination_port": "5432", "action": "deny",
                           "source_ip_address": None, "source_firewall_group_id": None}},
    )  # fmt: skip
    assert rule.status_code == 201, rule.json()
    rule_body = rule.json()["firewall_rule"]
    assert rule_body["ip_version"] == 4
    assert rule_body["firewall_policy_id"] == []
    other = api.post("/fwaas/firewall_rules", {"firewall_rule": {"name": "any"}}).json()
    policy = api.post(
        "/fwaas/firewall_policies",
        {"firewall_policy": {"name": "prod", "firewall_rules": [rule_body["id"]]}},
    ).json()["firewall_policy"]
    assert (policy["firewall_rules"], policy["audited"]) == ([rule_body["id"]], False)
    inserted = api.put(
        f"/fwaas/firewall_policies/{policy['id']}/insert_rule",
        {"firewall_rule_id": other["firewall_rule"]["id"], "insert_before": "",
         "insert_after": rule_body["id"]},
    )  # fmt: skip
    assert inserted.status_code == 200
    assert inserted.json()["firewall_rules"] == [rule_body["id"], other["firewall_rule"]["id"]]
    shown = api.get(f"/fwaas/firewall_rules/{rule_body['id']}").json()["firewall_rule"]
    assert shown["firewall_policy_id"] == [policy["id"]]
    in_policy = api.get("/fwaas/firewall_rules", {"firewall_policy_id": policy["id"]}).json()
    assert len(in_policy["firewall_rules"]) == 2
    group = api.post(
        "/fwaas/firewall_groups",
        {"firewall_group": {"name": "edge", "ingress_firewall_policy_id": policy["id"],
                            "ports": []}},
    )  # fmt: skip
    assert group.status_code == 201
    assert group.json()["firewall_group"]["status"] == "INACTIVE"
    bad = api.post(
        "/fwaas/firewall_rules",
        {"firewall_rule": {"protocol": "icmp", "destination_port": "22"}},
    )
    assert (bad.status_code, error_type(bad)) == (400, "FirewallRuleInvalidICMPParameter")
    used = api.delete(f"/fwaas/firewall_policies/{policy['id']}")
    assert (used.status_code, error_type(used)) == (409, "FirewallPolicyInUse")
    missing = api.get("/fwaas/firewall_groups/00000000-0000-0000-0000-000000000000")
    assert (missing.status_code, error_type(missing)) == (404, "FirewallGroupNotFound")
    aliases = {item["alias"] for item in api.get("/extensions").json()["extensions"]}
    assert {"router", "fwaas_v2"} <= aliases


def test_another_projects_routers_and_firewall_objects_are_invisible(alice, charlie, project_a):
    alpha = NeutronClient(alice)
    router = alpha.post("/routers", {"router": {"name": "r1"}}).json()["router"]
    rule = alpha.post("/fwaas/firewall_rules", {"firewall_rule": {"name": "x"}}).json()
    bravo = NeutronClient(charlie)
    assert bravo.get("/routers").json()["routers"] == []
    assert bravo.get("/fwaas/firewall_rules").json()["firewall_rules"] == []
    hidden = bravo.get(f"/routers/{router['id']}")
    assert (hidden.status_code, error_type(hidden)) == (404, "RouterNotFound")
    stolen = bravo.post(
        "/fwaas/firewall_policies",
        {"firewall_policy": {"firewall_rules": [rule["firewall_rule"]["id"]]}},
    )
    assert (stolen.status_code, error_type(stolen)) == (404, "FirewallRuleNotFound")
    assert Router.objects.count() == 1
